"""The bridge's core as a registry of links: a link that ends, whoever ends it, leaves the registry and the metrics;
one error type carries the AMQP condition."""

from __future__ import annotations

import time

import pytest
from amqp_kafka_bridge.converters import ConversionError, converter_for
from amqp_kafka_bridge.endpoint import AddressError, parse_source
from amqp_kafka_bridge.errors import AmqpConditionError
from proton import Message

from tests.bridge.clients import receive, send
from tests.bridge.conftest import produce


def _wait_for(check, timeout: float = 20.0) -> bool:
    """Poll ``check()`` until true or the deadline: the registry changes on the reactor thread, after the peer is done."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _open_links(bridge, role: str) -> str:
    """The ``bridge_open_links`` gauge for ``role``, as /metrics shows it."""
    for line in bridge.metrics.render().decode().splitlines():
        if line.startswith(f'bridge_open_links{{role="{role}"}}'):
            return line.rsplit(" ", 1)[1]
    return "absent"


@pytest.mark.unit
def test_one_error_type_carries_the_condition():
    with pytest.raises(AmqpConditionError) as refused:
        parse_source("topic", None, None)  # no consumer group
    assert isinstance(refused.value, AddressError)
    condition = refused.value.to_condition()
    assert (condition.name, condition.description) == ("amqp:invalid-field", refused.value.description)
    assert "group" in refused.value.description and refused.value.reason == "invalid-field"

    with pytest.raises(AmqpConditionError) as bad_json:
        converter_for("json").to_record(Message(body=b"{not json"), "t")
    assert isinstance(bad_json.value, ConversionError) and bad_json.value.condition == "amqp:decode-error"


@pytest.mark.integration
def test_a_link_that_detaches_itself_leaves_the_registry(start_bridge, kafka_bootstrap, unique_name):
    """The detach policy closes the sender link from inside the link; the core learns it from proton, not from the link."""
    topic = unique_name("core")
    produce(kafka_bootstrap, topic, [{"value": f"{i}".encode()} for i in range(3)])
    bridge = start_bridge(on_rejected="detach")
    result = receive(bridge.url, f"{topic}/group.id/g", 3, decide=lambda m: "reject", credit=1)
    assert result.link_error is not None and "stopped by policy" in result.link_error
    assert _wait_for(lambda: not bridge.core.links), bridge.core.links
    assert _open_links(bridge, "sender") == "0.0"
    # The detached link's consumer committed nothing past the rejected record and left the group.
    again = receive(bridge.url, f"{topic}/group.id/g", 3, credit=1)
    assert [bytes(m.body) for m in again.messages] == [b"0", b"1", b"2"]


@pytest.mark.integration
def test_a_link_the_core_detaches_leaves_the_registry(start_bridge, unique_name):
    """A failed topic check: the core detaches the link with the check's condition and forgets it."""
    bridge = start_bridge(auto_create_topics=False)
    result = send(bridge.url, unique_name("missing"), [Message(body="x")], timeout=20)
    assert result.link_error is not None and result.link_error.startswith("amqp:not-found"), result
    assert _wait_for(lambda: not bridge.core.links), bridge.core.links
    assert _open_links(bridge, "receiver") == "0.0"
