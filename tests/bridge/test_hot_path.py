"""The hot path below proton's dispatch (``amqp_kafka_bridge.hot_path``) and the plain-Python codecs it uses.

Three kinds of test: pins that fail loudly when a private python-qpid-proton (or
prometheus_client) internal the bridge hooks into changes; differential tests that hold the
plain-Python encoder and reader to proton's own bytes and values; and integration tests
against the real Kafka that see the hot path serve every message of a bridged link.
"""

from __future__ import annotations

import inspect
import json
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest
from amqp_kafka_bridge import hot_path
from amqp_kafka_bridge.converters import ConversionError, KafkaRecord, converter_for
from amqp_kafka_bridge.metrics import observe_many
from amqp_message_model.decoding import PlainMessage, read_plain
from amqp_message_model.encoding import encode_value
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from proton import Data, Message, char, int32, symbol, timestamp, ubyte, ulong
from proton.reactor import Container

from tests.bridge.clients import receive, send
from tests.bridge.helpers import consume, produce

ROOT = Path(__file__).resolve().parents[2]


# --- pins: private internals the hot path relies on --------------------------------------------


def test_proton_is_the_pinned_version():
    pinned = next(
        line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("python-qpid-proton==")
    )
    assert version("python-qpid-proton") == pinned.split("==")[1], "the hot path was written against the pinned proton"


def test_proton_internals_the_hot_path_hooks_into():
    from proton._events import Collector
    from proton._reactor import Reactor

    process = inspect.getsource(Reactor.process)
    assert "self._collector.peek()" in process and "self._collector.pop()" in process, (
        "Reactor.process no longer reads events through self._collector.peek/pop: HotCollector would never be asked"
    )
    container = Container()
    assert isinstance(container._collector, Collector)
    assert hasattr(Collector(), "_impl")
    for name in (
        "pn_collector_peek", "pn_collector_pop", "pn_event_type", "pn_event_delivery", "pn_event_link", "pn_delivery_link",
        "pn_delivery_pending", "pn_delivery_partial", "pn_delivery_aborted", "pn_delivery_readable", "pn_delivery_settled",
        "pn_delivery_updated", "pn_delivery_remote_state", "pn_delivery_update", "pn_delivery_settle", "pn_link_advance",
        "pn_link_credit", "pn_link_flow", "pn_link_send", "pn_link_recv", "pn_link_is_sender", "pn_delivery", "pn_incref",
        "pn_decref", "pn_link_session", "pn_session_connection", "pn_connection_transport", "pn_transport_pending",
        "pn_transport_peek", "pn_transport_pop", "pn_collector_more", "pn_event_context", "pn_event_transport",
    ):  # fmt: skip
        assert hasattr(hot_path.lib, name), f"proton's cffi module lost {name}"


def test_proton_internals_write_out_relies_on():
    import proton._handlers
    import proton._reactor
    from proton._handlers import IOHandler

    assert list(inspect.signature(IOHandler.update).parameters) == ["transport", "selectable", "now"]
    for module in (proton._reactor, proton._handlers):  # accepted and connected sockets
        assert "t._selectable = s" in inspect.getsource(module), f"{module.__name__} no longer sets transport._selectable"


def test_raw_link_is_the_wrappers_pointer_and_hashes_by_address():
    from proton import Connection

    conn = Connection()
    link = conn.session().receiver("r")
    raw = hot_path.raw_link(link)
    routes = hot_path.HotRoutes()
    routes.add(link, "target")  # type: ignore[arg-type]
    same = hot_path.lib.pn_link_head(conn._impl, 0)  # a new cffi pointer object to the same pn_link_t
    assert same is not raw and same == raw
    assert routes[same] == "target"
    routes.remove(link)
    assert not routes


def test_install_replaces_the_collector_before_any_connection():
    container = Container()
    collector = hot_path.install(container, hot_path.HotRoutes())
    assert container._collector is collector
    with pytest.raises(RuntimeError, match="_collector"):
        hot_path.install(object(), hot_path.HotRoutes())


def test_wakeups_call_back_on_the_reading_side_and_are_harmless_after_close():
    errors: list[int] = []
    wakeups = hot_path.Wakeups(on_error=lambda: errors.append(1))
    calls: list[str] = []
    wake_a = wakeups.register(lambda: calls.append("a"))
    wake_b = wakeups.register(lambda: 1 / 0)
    wake_a(), wake_a(), wake_b()
    wakeups.on_selectable_readable(None)  # what proton calls once the pipe is readable
    assert calls == ["a"] and errors == [1]  # one call per kind however many wake-ups; a failure contained
    wakeups.on_selectable_readable(None)  # nothing pending: no call, no blocking read
    assert calls == ["a"]
    wakeups.close()
    wake_a()  # a Kafka thread still closing after the reactor ended
    assert calls == ["a"]


def test_observe_many_renders_what_observe_per_value_does():
    amounts = [0.0001, 0.0005, 0.0007, 0.001, 0.003, 0.003, 0.2, 7.0, 100.0]
    one, many = CollectorRegistry(), CollectorRegistry()
    buckets = (0.0005, 0.001, 0.0025, 0.005, 0.1, 10.0)
    single, batched = Histogram("h", "h", registry=one, buckets=buckets), Histogram("h", "h", registry=many, buckets=buckets)
    for amount in amounts:
        single.observe(amount)
    observe_many(batched, amounts)
    strip = lambda text: [line for line in text.decode().splitlines() if "_created" not in line]  # noqa: E731
    assert strip(generate_latest(many)) == strip(generate_latest(one))


# --- the plain-Python encoder against proton's bytes -------------------------------------------

RECORDS = [
    KafkaRecord("topic-a", b"x" * 10, b"k1", 3, 123456, (("device_id", b"d-3"), ("amqp.subject", b"sub")), 1764370000123),
    KafkaRecord("t", None, None, 0, 5),
    KafkaRecord(
        "t", b"y" * 300, b"\xff\xfe", 2**31, 2**40,
        (("amqp.message-id", b"m1"), ("amqp.correlation-id", b""), ("amqp.content-type", b"text/plain"), ("h", b"\xff"), ("e", b"")),
        1000,
    ),
    KafkaRecord("t" * 300, json.dumps({"a": [1, 2.5, None, True, "x" * 300, {"b": []}], "n": -5}).encode(), None, 1, 1, (("amqp.subject", "é".encode()),)),
    KafkaRecord("t", b"[]", None, None, None, tuple((f"h{i}", b"v" * 30) for i in range(20))),
    KafkaRecord("t", b'"s"', b"k", 0, 0, (("amqp.subject", b"s" * 300), ("amqp.message-id", b"i" * 100)), 1),
    KafkaRecord("t", b"null", None, 7, -1),
]  # fmt: skip


@pytest.mark.parametrize("converter", ["raw", "json"])
def test_encode_message_gives_protons_bytes(converter):
    conv = converter_for(converter)
    for record in RECORDS:
        if converter == "json" and record.value is not None:
            try:
                json.loads(record.value)
            except ValueError:
                continue
        assert conv.encode_message(record) == bytes(conv.to_message(record).encode()), record


def test_encode_message_of_the_amqp_converter_is_protons():
    conv = converter_for("amqp")
    value = bytes(Message(body="inner", subject="s", properties={"p": 1}).encode())
    record = KafkaRecord("t", value, b"k", 0, 9, (("h", b"v"),))
    assert conv.encode_message(record) == bytes(conv.to_message(record).encode())


def test_encode_value_types_like_protons_data():
    for value in ("", "x" * 256, b"", b"z" * 300, 0, -128, 127, 128, -(2**63), 2**63 - 1, 1.5, True, False, None,
                  symbol("s"), {"a": [1, {}, []]}, [], [[]], ulong(7), int32(-3), uuid.UUID(int=5)):  # fmt: skip
        data = Data()
        data.put_object(value)
        assert encode_value(value) == bytes(data.encode()), repr(value)


def test_a_record_that_cannot_be_encoded_is_a_conversion_error():
    with pytest.raises(ConversionError, match="cannot be written"):
        converter_for("json").encode_message(KafkaRecord("t", str(2**70).encode()))
    with pytest.raises(ConversionError, match="not valid JSON"):
        converter_for("json").encode_message(KafkaRecord("t", b"{bad"))


# --- the plain reader against proton's decode --------------------------------------------------


def _messages() -> list[tuple[Message, bool]]:
    """(message, read plainly?) covering every branch of the reader."""
    m1 = Message(body="text body")
    m1.id, m1.correlation_id, m1.creation_time, m1.address, m1.reply_to, m1.user_id = (
        "id-1",
        "c-1",
        1764370000.123,
        "to",
        "r",
        b"u",
    )
    m2 = Message(body=b"", inferred=True)
    m2.group_id, m2.group_sequence, m2.expiry_time, m2.content_encoding = "g", 3, 5, "gzip"
    with_ulong_id = Message(body=b"x", inferred=True)
    with_ulong_id.id = ulong(5)
    return [
        (Message(body=b"x" * 100, inferred=True), True),
        (Message(body=b'{"t": 21.7}', inferred=True, subject="device-3", content_type="application/json", properties={"device_id": "device-3"}), True),
        (m1, True),
        (m2, True),
        (Message(body=b"b", inferred=True, properties={"a": 1, "b": 2.5, "c": True, "d": None, "e": b"\xff", "f": "é" * 300, "g": -(2**40)},
                 annotations={symbol("x-opt-bridge.key"): "k", symbol("x-opt-bridge.partition"): 2, "other": b"v"}), True),
        (Message(body=None), True),
        (Message(body=b"x" * 300, inferred=True, durable=True, priority=7, ttl=5, delivery_count=2), True),
        (Message(body=b"x", inferred=True, annotations={symbol("x-opt-bridge.key"): 5}), True),
        (Message(body=b"x", inferred=True, annotations={symbol("x-opt-bridge.partition"): "no"}), True),
        (Message(body=b"x", inferred=True, content_type="None", subject=""), True),
        (with_ulong_id, False),
        (Message(body={"a": 1}), False),
        (Message(body=5), False),
        (Message(body=symbol("s")), False),
        (Message(body=[1, 2], inferred=True), False),
        (Message(body=b"x", inferred=True, properties={"u": ulong(3)}), False),
        (Message(body=b"x", inferred=True, properties={"c": char("c"), "t": timestamp(5), "b": ubyte(1)}), False),
        (Message(body=b"x", inferred=True, creation_time=0, properties={"s": symbol("v")}), False),
    ]  # fmt: skip


@pytest.mark.parametrize("converter", ["raw", "json"])
def test_read_plain_gives_the_record_protons_decode_gives(converter):
    conv = converter_for(converter)

    def record_of(message: Message | PlainMessage) -> object:
        try:
            return conv.to_record(message, "t", "device_id", now_ms=1764370000000)
        except Exception as exc:  # noqa: BLE001 - the same error either way is what is compared
            return repr(exc)

    for message, plain in _messages():
        data = bytes(message.encode())
        read = read_plain(data)
        assert (read is not None) == plain, message
        if read is not None:
            decoded = Message()
            decoded.decode(data)
            assert record_of(read) == record_of(decoded), message


def test_read_plain_leaves_malformed_input_to_proton():
    whole = bytes(Message(body=b"x" * 20, inferred=True, subject="s").encode())
    for bad in (
        b"",
        b"\x00",
        b"\x00\x53",
        whole[:-3],
        whole + b"\x00",
        b"\x00\x53\x75\xa0\xff",
        b"not amqp at all",
        b"\x00\x53\x78\x45",
    ):
        assert read_plain(bad) is None or bad == b"", bad


# --- the hot path in a running bridge, against the real Kafka ----------------------------------


@pytest.mark.integration
def test_every_transfer_and_outcome_of_bridged_links_takes_the_hot_path(start_bridge, kafka_bootstrap, unique_name):
    bridge = start_bridge()
    topic = unique_name("hot")
    messages = [Message(body=f"m{i}".encode(), inferred=True, subject=f"s{i}") for i in range(40)]
    messages += [Message(body={"n": i}) for i in range(10)]  # not plain: proton decodes them, still on the hot path
    before = bridge.hot.served
    result = send(bridge.url, topic, messages)
    assert result.outcomes == ["accepted"] * 50
    assert bridge.hot.served - before >= 50  # one delivery event per transfer, none through proton's dispatch
    written = bridge.core.written_early
    assert written > 0  # the outcomes went out as the reports came back, not on the reactor's next pass
    records = consume(kafka_bootstrap, topic, 50)
    assert [r.value() for r in records[:40]] == [f"m{i}".encode() for i in range(40)]
    assert [json.loads(r.value()) for r in records[40:]] == [{"n": i} for i in range(10)]
    assert dict(records[3].headers())["amqp.subject"] == b"s3"

    out = unique_name("hot-out")
    produce(kafka_bootstrap, out, [{"value": f"r{i}".encode(), "key": b"k"} for i in range(30)])
    before = bridge.hot.served
    got = receive(bridge.url, f"{out}/group.id/g", 30)
    assert [bytes(m.body) for m in got.messages] == [f"r{i}".encode() for i in range(30)]
    assert got.messages[29].annotations["x-opt-bridge.offset"] == 29
    assert bridge.hot.served - before >= 30  # the peer's outcomes (and its credit) came through the hot path
    assert bridge.core.written_early > written  # and the messages were written as the consumer brought them
    metrics = _text(bridge.metrics.render())
    assert f'bridge_amqp_to_kafka_messages_total{{topic="{topic}"}} 50.0' in metrics
    assert "bridge_amqp_to_kafka_latency_seconds_count 50.0" in metrics


@pytest.mark.integration
@pytest.mark.parametrize("native_lane", [True, False], ids=["native-lane", "python-producer"])
def test_a_bug_in_a_hot_handler_is_contained_and_counted(start_bridge, unique_name, monkeypatch, native_lane):
    bridge = start_bridge(native_lane=native_lane)
    assert (bridge.core.serve is not None) == native_lane  # transfers read in C by the lane, or by the Python collector
    from amqp_kafka_bridge.links import InboundLink

    calls = []
    original = InboundLink.on_transfer_at

    def failing_once(self, address, data, presettled):
        if not calls:
            calls.append(1)
            raise RuntimeError("boom")
        return original(self, address, data, presettled)

    monkeypatch.setattr(InboundLink, "on_transfer_at", failing_once)
    topic = unique_name("hot-bug")
    # map bodies: not of the plain shape, so the lane hands them to on_transfer_at too (plain ones it converts in C)
    result = send(bridge.url, topic, [Message(body={"n": 1}), Message(body={"n": 2})], timeout=5)
    assert result.outcomes[1:] == ["accepted"]  # the reactor kept going; the failed one stays unsettled (resent by its peer)
    assert 'bridge_kafka_errors_total{kind="internal"} 1.0' in _text(bridge.metrics.render())


@pytest.mark.integration
@pytest.mark.parametrize("native_lane", [True, False], ids=["native-lane", "python-producer"])
def test_the_records_of_a_burst_of_transfers_are_produced_together_when_it_ends(
    start_bridge, kafka_bootstrap, unique_name, monkeypatch, native_lane
):
    bridge = start_bridge(native_lane=native_lane)
    from amqp_kafka_bridge.links import InboundLink
    from amqp_kafka_bridge.producer_lane import LanePump

    pump = bridge.core.producer
    assert isinstance(pump, LanePump) == native_lane
    read, waiting = [0], []  # transfers read so far; per produce call, how many read ones were not produced yet
    on_transfer = InboundLink.on_transfer_at

    def counting_read(self, address, data, presettled):
        read[0] += 1
        return on_transfer(self, address, data, presettled)

    monkeypatch.setattr(InboundLink, "on_transfer_at", counting_read)
    if native_lane:  # the link hands the lane its burst in one call: count each record at a stand-in for the lane
        lane = pump.lane

        class CountingLane:
            def __getattr__(self, name):
                return getattr(lane, name)

            def produce_queued(self, slot, queued):
                waiting.extend(range(len(queued), 0, -1))  # the first of them waited for all the burst's others
                return lane.produce_queued(slot, queued)

        monkeypatch.setattr(pump, "lane", CountingLane())
    else:
        produce = pump.produce

        def counting_produce(record, token):
            waiting.append(read[0] - len(waiting))
            return produce(record, token)

        monkeypatch.setattr(pump, "produce", counting_produce)
    topic = unique_name("hot-burst")
    bodies = [b"%03d" % i + b"b" * 197 for i in range(200)]  # 200 transfers of ~230 bytes: one write of ~46 KB
    result = send(bridge.url, topic, [Message(body=b, inferred=True) for b in bodies])
    assert result.outcomes == ["accepted"] * 200
    assert len(waiting) == 200
    # a produce call came after many transfers had been read: the burst went in together; and more of them
    # than proton's own read of 8 KiB holds (35 of these), as the bridge reads up to 64 KiB per select
    assert max(waiting) >= 60
    assert [r.value() for r in consume(kafka_bootstrap, topic, 200)] == bodies  # in order, each once
    assert read[0] == (0 if native_lane else 200)  # the lane converted these plain messages in C, Python none of them


def _text(rendered: object) -> str:
    return rendered.decode() if isinstance(rendered, bytes) else str(rendered)


@pytest.mark.integration
def test_a_transfer_split_over_many_frames_is_read_whole(start_bridge, kafka_bootstrap, unique_name):
    bridge = start_bridge()  # the bridge's 32 KiB frames split a 300 kB message into ten transfers
    topic = unique_name("hot-frames")
    big = bytes(range(256)) * 1200
    result = send(
        bridge.url,
        topic,
        [Message(body=b"a", inferred=True), Message(body=big, inferred=True), Message(body=b"z", inferred=True)],
    )
    assert result.outcomes == ["accepted"] * 3
    assert [r.value() for r in consume(kafka_bootstrap, topic, 3)] == [b"a", big, b"z"]


def test_write_out_caches_a_transports_socket_only_while_it_belongs_to_that_transport():
    from proton import Connection, Transport

    class FakeSocket:
        is_terminal = False

        def __init__(self, transport: Transport) -> None:
            self._transport = transport

    transport = Transport(Transport.SERVER)
    transport.bind(Connection())
    first = transport._selectable = FakeSocket(transport)
    assert hot_path._socket_of(transport._impl) is first
    transport._selectable = FakeSocket(transport)
    assert hot_path._socket_of(transport._impl) is first  # cached: no wrapper looked up
    first.is_terminal = True  # the socket ended: the transport's current one is looked up again
    assert hot_path._socket_of(transport._impl) is transport._selectable
    other = Transport(Transport.SERVER)
    hot_path._sockets[other._impl] = transport._selectable  # as if a freed transport's address were reused
    other._selectable = FakeSocket(other)
    assert hot_path._socket_of(other._impl) is other._selectable
