"""Each row of the README's broker table, checked on the broker ``BROKER`` chose.

The expectations per broker are written out here (``EXPECTED``) so that a broker upgrade
that changes a behaviour fails a test instead of surprising a user.
"""

from __future__ import annotations

import pytest
from amqp_message_model.connection import CREDENTIAL_MECHANISMS
from proton import ConnectionException, Message
from proton.reactor import Copy, Selector
from proton.utils import BlockingConnection

from tests import amqp_clients

pytestmark = pytest.mark.integration

# broker -> what it does; each key is one row of the README table.
EXPECTED: dict[str, dict[str, object]] = {
    # redelivery: (delivery-count, first-acquirer) of the first delivery and of the redelivery after a dropped connection.
    "artemis": {"selector": True, "browse": True, "redelivery": [(0, False), (0, False)]},
    "activemq": {"selector": True, "browse": True, "redelivery": [(0, False), (1, False)]},
    "rabbitmq": {"selector": False, "browse": False, "redelivery": [(0, True), (0, False)]},
}

# Address forms that reach the same queue, (send to, receive from), per broker; {q} is a fresh name.
FORMS: dict[str, list[tuple[str, str]]] = {
    "artemis": [("{q}", "{q}"), ("{q}", "{q}::{q}")],
    "activemq": [("{q}", "{q}"), ("queue://{q}", "{q}"), ("{q}", "queue://{q}")],
    "rabbitmq": [("{q}", "{q}"), ("/queue/{q}", "{q}"), ("{q}", "/queue/{q}")],
}


def _drain(url: str, address: str, options: object = None, credit: int = 20) -> list[str]:
    """Every body a receiver with ``options`` gets (accepting each) until the address stays quiet."""
    connection = BlockingConnection(url, timeout=10)
    try:
        receiver = connection.create_receiver(address, credit=credit, options=options)
        bodies = []
        while True:
            try:
                message = receiver.receive(timeout=2)  # the end of a finite backlog: nothing more comes
            except Exception:  # noqa: BLE001 - proton.Timeout
                return bodies
            bodies.append(message.body)
            receiver.accept()
    finally:
        connection.close()


def _send_numbered(url: str, address: str, n: int) -> None:
    messages = [Message(body=f"m{i}", properties={"k": i % 2}, durable=True) for i in range(n)]
    assert amqp_clients.send(url, address, messages)["accepted"] == n


@pytest.mark.parametrize("form", range(3))
def test_address_forms_reach_the_same_queue(amqp_url, unique_name, broker_name, form) -> None:
    forms = FORMS[broker_name]
    if form >= len(forms):
        pytest.skip(f"{broker_name} has {len(forms)} forms in the table")
    q = unique_name("form")
    send_to, receive_from = (f.format(q=q) for f in forms[form])
    _send_numbered(amqp_url, send_to, 3)
    assert sorted(_drain(amqp_url, receive_from)) == ["m0", "m1", "m2"]


def test_an_undeclared_address_is_never_accepted_and_dropped(spark, amqp_url, unique_name, broker_name) -> None:
    """Artemis refuses ``noauto.*``; ActiveMQ creates every address; RabbitMQ's /amq/queue/ is checked by the sink and simulator."""
    name = unique_name("noauto.missing")
    address = f"/amq/queue/{name}" if broker_name == "rabbitmq" else name
    df = spark.range(5).selectExpr("CAST(id AS STRING) AS body")
    write = df.write.format("amqp").option("url", amqp_url).option("address", address).option("sendTimeout", "20").mode("append")
    if broker_name == "activemq":
        write.save()  # auto-created, stored: nothing is dropped
        assert sorted(_drain(amqp_url, address)) == [str(i) for i in range(5)]
        return
    with pytest.raises(Exception) as failure:
        write.save()
    expected = "no queue" if broker_name == "rabbitmq" else "not-found"
    assert expected in str(failure.value)


def test_the_simulator_fails_on_a_dropping_address(amqp_url, unique_name, broker_name, tmp_path) -> None:
    if broker_name != "rabbitmq":
        pytest.skip("only RabbitMQ accepts-and-drops (covered for the others by the sink test above)")
    from simulators import temperature as temperature_cli
    from tests.simulator_runs import temperature_args

    log = tmp_path / "accepted.jsonl"
    argv = temperature_args(
        url=amqp_url, address=f"/amq/queue/{unique_name('missing')}", devices=2, count=10, accepted_log=log, quiet=True
    )
    assert temperature_cli.main(argv) != 0
    assert not log.exists() or log.read_text() == ""


def test_fanout_gives_every_consumer_every_message(amqp_url, unique_name, broker_name, local_services) -> None:
    if local_services is None and broker_name == "rabbitmq":
        pytest.skip("RabbitMQ's fan-out is declared through the session's own node")
    address = unique_name("fan")
    consumers = ["spark", "bridge"]
    if broker_name == "artemis":
        from demo.topology import ensure_fanout as artemis_fanout
        from services.topology import fanout_addresses

        fanout = fanout_addresses("artemis", address, consumers)
        artemis_fanout(amqp_url, address, list(fanout.sources.values()))
    else:
        from services.topology import ensure_fanout

        fanout = ensure_fanout(local_services.settings, amqp_url, address, consumers)
    _send_numbered(amqp_url, fanout.publish, 10)
    for source in fanout.sources.values():
        assert sorted(_drain(amqp_url, source)) == sorted(f"m{i}" for i in range(10)), source


def test_selectors(amqp_url, unique_name, broker_name) -> None:
    q = unique_name("sel")
    _send_numbered(amqp_url, q, 4)
    got = sorted(_drain(amqp_url, q, options=Selector("k = 1")))
    if EXPECTED[broker_name]["selector"]:
        assert got == ["m1", "m3"]
    else:  # echoed back in the attach, but not applied: every message arrives
        assert got == ["m0", "m1", "m2", "m3"]


def test_browse_with_distribution_mode_copy(amqp_url, unique_name, broker_name) -> None:
    q = unique_name("browse")
    _send_numbered(amqp_url, q, 3)
    browsed = sorted(_drain(amqp_url, q, options=Copy()))
    assert browsed == ["m0", "m1", "m2"]
    left = sorted(_drain(amqp_url, q))
    if EXPECTED[broker_name]["browse"]:
        assert left == ["m0", "m1", "m2"]  # browsing left them in place
    else:  # 'copy' is echoed back, yet the messages were consumed
        assert left == []


def test_redelivery_markers(amqp_url, unique_name, broker_name) -> None:
    q = unique_name("redeliver")
    _send_numbered(amqp_url, q, 1)
    seen = []
    for _ in range(2):  # receive without settling, then drop the connection: the broker redelivers
        connection = BlockingConnection(amqp_url, timeout=10)
        message = connection.create_receiver(q, credit=1).receive(timeout=10)
        seen.append((message.delivery_count, message.first_acquirer))
        connection.close()
    assert _drain(amqp_url, q) == ["m0"]
    assert seen == EXPECTED[broker_name]["redelivery"]


def _open(url: str, **kwargs: object) -> None:
    BlockingConnection(url, timeout=10, **kwargs).close()


def test_sasl_plain_anonymous_and_a_wrong_password(amqp_url, broker_name) -> None:
    host_port = amqp_url.split("://", 1)[1]
    _open(amqp_url)  # anonymous
    _open(f"amqp://admin:admin@{host_port}", allowed_mechs=CREDENTIAL_MECHANISMS)  # SASL PLAIN
    with pytest.raises(ConnectionException, match="unauthorized-access"):
        _open(f"amqp://admin:wrong@{host_port}", allowed_mechs=CREDENTIAL_MECHANISMS)
    # proton left to choose: RabbitMQ lists ANONYMOUS first, and proton's built-in SASL takes it, so a
    # wrong password connects as nobody. proton built with Cyrus SASL (what make setup installs) lets
    # Cyrus choose, which prefers a mechanism that uses the credentials given: refused.
    from proton import SASL

    if broker_name == "rabbitmq" and not SASL.extended():
        _open(f"amqp://admin:wrong@{host_port}")
    else:
        with pytest.raises(ConnectionException, match="unauthorized-access"):
            _open(f"amqp://admin:wrong@{host_port}")


def test_project_clients_never_fall_back_to_anonymous(amqp_url, unique_name, tmp_path) -> None:
    """The connector's connect arguments and the simulator refuse a wrong password on every broker."""
    from amqp_message_model.connection import ConnectionOptions, connect_kwargs, parse_endpoints

    from simulators import temperature as temperature_cli
    from tests.simulator_runs import temperature_args

    wrong = amqp_url.replace("://", "://admin:wrong@", 1)
    kwargs = connect_kwargs(ConnectionOptions(endpoints=parse_endpoints(wrong)), reconnect=False)
    assert "ANONYMOUS" not in kwargs["allowed_mechs"]
    with pytest.raises(ConnectionException, match="unauthorized-access"):
        _open(wrong, allowed_mechs=kwargs["allowed_mechs"])
    argv = temperature_args(
        url=wrong, address=unique_name("sasl"), devices=1, count=5, drain_timeout=5, accepted_log=tmp_path / "a.jsonl", quiet=True
    )
    assert temperature_cli.main(argv) != 0
