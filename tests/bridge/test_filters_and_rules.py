"""The receiver filters (bridge and Strimzi spellings) and the authorization rules: pure functions, no services."""

from __future__ import annotations

import pytest
from amqp_kafka_bridge.authorization import AclRule, Authorizer
from amqp_kafka_bridge.filters import FilterError, parse_filters
from amqp_kafka_bridge.settings import BridgeSettings
from proton import Described, int32, symbol, uint, ulong
from pydantic import ValidationError

pytestmark = pytest.mark.unit

P, OFFSET = symbol("io.strimzi:partition-filter:int"), symbol("io.strimzi:offset-filter:long")


def test_strimzi_filters_select_and_are_echoed_as_sent():
    applied = parse_filters({P: int32(1), OFFSET: 5})
    assert (applied.partition, applied.offset) == (1, 5)
    assert applied.echo == {P: int32(1), OFFSET: 5} and type(applied.echo[P]) is int32


def test_bridge_filters_accept_any_non_negative_integer():
    name = symbol("x-opt-bridge.partition-filter:int")
    applied = parse_filters({name: Described(ulong(1), 2)})
    assert (applied.partition, applied.offset, list(applied.echo)) == (2, None, [name])


@pytest.mark.parametrize(
    ("filters", "condition"),
    [
        ({P: 1}, "io.strimzi:wrong-partition-filter"),  # a long where Strimzi wants an int
        ({P: int32(0), OFFSET: int32(3)}, "io.strimzi:wrong-offset-filter"),
        ({P: int32(0), OFFSET: uint(3)}, "io.strimzi:wrong-offset-filter"),
        ({OFFSET: 3}, "io.strimzi:no-partition-filter"),
        ({P: int32(-1)}, "io.strimzi:wrong-filter"),
        ({P: int32(0), OFFSET: -2}, "io.strimzi:wrong-filter"),
        ({symbol("x-opt-bridge.offset-filter"): 3}, "amqp:invalid-field"),
        ({symbol("x-opt-bridge.partition-filter"): "one"}, "amqp:invalid-field"),
        ({P: int32(0), symbol("x-opt-bridge.partition-filter"): 0}, "amqp:invalid-field"),
        ({symbol("apache.org:selector-filter:string"): "color = 'red'"}, "amqp:not-implemented"),
        ({P: int32(0), symbol("jms-selector"): "x"}, "amqp:not-implemented"),
    ],
)
def test_filters_the_bridge_cannot_honour_are_refused_with_their_condition(filters, condition):
    with pytest.raises(FilterError) as err:
        parse_filters(filters)
    assert err.value.condition == condition


def test_unknown_filter_is_named_in_the_refusal():
    with pytest.raises(FilterError, match="jms-selector"):
        parse_filters({symbol("jms-selector"): "x"})


RULES = [
    AclRule(principal="alice", produce=("sensors.*",)),
    AclRule(principal="bob", consume=("sensors.*",), groups=("analytics",)),
    AclRule(principal="CN=device-1,O=test", produce=("devices.1",), create_topics=("devices.1",)),
]


@pytest.mark.parametrize(
    ("identity", "action", "topic", "group", "allowed"),
    [
        ("alice", "produce", "sensors.temp", None, True),
        ("alice", "produce", "sensorsX", None, False),
        ("alice", "consume", "sensors.temp", "analytics", False),
        ("alice", "create", "sensors.temp", None, False),
        ("bob", "consume", "sensors.temp", "analytics", True),
        ("bob", "consume", "sensors.temp", "other", False),
        ("bob", "consume", "plant.temp", "analytics", False),
        ("bob", "produce", "sensors.temp", None, False),
        ("CN=device-1,O=test", "create", "devices.1", None, True),
        ("mallory", "produce", "sensors.temp", None, False),
        ("anonymous", "produce", "sensors.temp", None, False),
    ],
)
def test_rules_deny_by_default_once_any_exists(identity, action, topic, group, allowed):
    decision = Authorizer(RULES).decide(identity, action, topic, group)
    assert decision.allowed is allowed
    if not allowed:
        assert topic in decision.reason and identity in decision.reason


def test_no_rules_allow_everything_and_star_matches_anyone():
    assert Authorizer([]).decide("anyone", "create", "t").allowed
    star = Authorizer([AclRule(principal="*", consume=("public.*",), groups=("*",))])
    assert star.decide("anonymous", "consume", "public.news", "g").allowed
    assert not star.decide("anonymous", "produce", "public.news").allowed


def test_open_access_on_the_network_is_refused_at_start(tmp_path):
    with pytest.raises(ValidationError, match="allow_open_access"):
        BridgeSettings.load(amqp_host="0.0.0.0")
    anonymous_creates = [{"principal": "anonymous", "produce": ["t"], "create_topics": ["t"]}]
    with pytest.raises(ValidationError, match="create topics"):
        BridgeSettings.load(amqp_host="0.0.0.0", acl=anonymous_creates)
    assert BridgeSettings.load(amqp_host="0.0.0.0", acl=anonymous_creates, auto_create_topics=False).acl
    assert BridgeSettings.load(amqp_host="0.0.0.0", allow_open_access=True).allow_open_access
    acl_file = tmp_path / "acl.yaml"
    acl_file.write_text("acl:\n  - {principal: alice, produce: ['sensors.*']}\n")
    assert [r.principal for r in BridgeSettings.load(amqp_host="0.0.0.0", acl_file=acl_file).all_acl()] == ["alice"]
