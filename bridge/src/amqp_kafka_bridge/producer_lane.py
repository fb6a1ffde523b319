"""The native lane: ``LanePump``, the producer whose reports settle AMQP deliveries in C, over the ``_lane`` extension.

At capacity most of the bridge's CPU per message was the Python around the conversion: reading
each transfer through proton's cffi calls, confluent-kafka's ``produce``, a report callback per
record run in Python on the poll thread (taking the GIL from the reactor), and a settle per
report on the reactor. The ``_lane`` extension (``_lane.c``) does all of it over the same
librdkafka and proton-c the process has loaded: its ``serve`` reads the receiving links'
transfers below the hot collector (``hot_path``) and hands each to its link as bytes and a
referenced delivery's address; the link converts it and hands its burst of records to
``Lane.produce_queued``; ``settle`` accepts and settles the acknowledged ones in C, returning
per link counts. Only failures and dead letters come back to Python, one by one.

``LanePump`` has :class:`~amqp_kafka_bridge.kafka_io.ProducerPump`'s interface (``produce``
with a Python token, ``settle``, ``flush``, ``close``, ``reachable``) plus the slots receiving
links produce into. :func:`load` says whether the extension can be used here: it needs the
extension built (``make setup`` builds it; a C compiler and Python's headers), and Linux, to find
the librdkafka confluent-kafka loaded. Where it cannot, the bridge uses ``ProducerPump``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException

from amqp_kafka_bridge.kafka_io import Ack, PolledProducer

log = logging.getLogger("bridge.kafka")
_client_log = logging.getLogger("bridge.librdkafka")
_SYSLOG_LEVELS = {0: 50, 1: 50, 2: 50, 3: 40, 4: 30, 5: 20, 6: 20, 7: 10}  # librdkafka's syslog levels -> logging's

_loaded: Any = None
_why_not: str | None = None


def _librdkafka_path() -> str:
    """The librdkafka file confluent-kafka's extension loaded (its wheel bundles one under a hashed name)."""
    import confluent_kafka.cimpl  # noqa: F401, PLC0415 - loads librdkafka into the process

    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            path = line.split(None, 5)[-1].strip()
            if "/librdkafka" in path:
                return path
    raise ImportError("confluent-kafka's librdkafka is not mapped in this process")


def load() -> Any:
    """The ``_lane`` module, ready (its C functions resolved), or None when it cannot be used here (logged once)."""
    global _loaded, _why_not  # noqa: PLW0603 - resolved once per process
    if _loaded is not None or _why_not is not None:
        return _loaded
    try:
        import cproton_ffi  # noqa: PLC0415 - proton-c as python-qpid-proton built it

        # The built extension, by name: it has no source, so the import graph (lint-cycles) would see the package.
        _lane = importlib.import_module(f"{__package__}._lane")

        _lane.load(_librdkafka_path(), cproton_ffi.__file__, cproton_ffi.lib.PN_DELIVERY)
        _loaded = _lane
    except (ImportError, OSError) as exc:
        _why_not = str(exc)
        log.warning("native produce lane unavailable, using the Python producer", extra={"error": _why_not})
    return _loaded


class LaneCounts(NamedTuple):
    """What a link's reports since the last ``settle`` came to (its accepted deliveries are settled already)."""

    done: int  # reports, successes and failures
    owed: int  # credit the settled deliveries freed
    acked: int
    bytes: int
    latency_sum: float
    buckets: tuple[int, ...]  # acknowledged records per latency bucket (the bounds the pump was made with)


def _as_config(config: dict[str, Any]) -> tuple[dict[str, str], Callable[[str], None] | None]:
    """librdkafka's string settings, and the statistics callback (the Python callables the C side cannot take)."""
    stats_cb = config.get("stats_cb")
    out = {}
    for name, value in config.items():
        if name in {"error_cb", "logger", "stats_cb"}:
            continue
        out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out, stats_cb


class LanePump(PolledProducer):
    """The bridge's idempotent producer, native lane (see the module docstring); ``ProducerPump``'s interface.

    ``open_slot(link)`` gives a receiving link the slot it produces its deliveries into with
    ``lane.produce``; ``settle`` (reactor thread, or the reactor lock held) settles the
    acknowledged ones and returns the Python tokens' reports, per link counts and failures.
    The poll thread serves librdkafka and calls ``on_reports`` when reports are waiting.
    """

    def __init__(
        self, module: Any, config: dict[str, Any], on_reports: Callable[[], None], latency_bounds: tuple[float, ...]
    ) -> None:
        super().__init__(on_reports)
        settings, self._stats_cb = _as_config(config)
        self.lane = module.Lane(settings, latency_bounds, lambda code: KafkaException(KafkaError(code)))
        self._module = module
        self.links: dict[int, Any] = {}  # slot -> the link producing into it (until the slot is freed)

    def open_slot(self, link: Any) -> int:
        slot = self.lane.open_slot()
        self.links[slot] = link
        return slot

    def inlet(self, link: Any, queued: list, producing: list, topic: str, key_property: str | None, max_bytes: int) -> Any:
        """The stand-in ``serve`` converts ``link``'s plain messages for (raw converter): each record goes into ``queued``."""
        return self._module.Inlet(link, queued, producing, topic, key_property, max_bytes)

    def close_slot(self, slot: int) -> None:
        """The link closed: what it still has in flight only counts when reported; the slot is freed after that."""
        if self.lane.close_slot(slot):
            self.links.pop(slot, None)

    def produce(self, record: Any, token: Any) -> None:
        """Produce ``record``; its report comes back from ``settle`` as an ``Ack`` for ``token``."""
        self.lane.produce(
            -1,
            record.topic,
            record.value,
            record.key,
            -1 if record.partition is None else record.partition,
            record.timestamp_ms or 0,
            record.headers or None,
            0,
            0,
            token,
        )

    def settle(self) -> tuple[list[Ack], list[tuple[Any, LaneCounts]], list[tuple[Any, int, KafkaError]]]:
        """Settle what Kafka acknowledged; returns the tokens' acks, ``(link, counts)`` and ``(link, delivery, error)`` failures.

        A failure's delivery (an address, 0 when pre-settled) is still referenced: the link settles and lets it go.
        """
        counts, failures, tokens = self.lane.settle()
        acks = [Ack(token, None if code == 0 else KafkaError(code)) for token, code in tokens]
        links = self.links
        failed = [(links[slot], dlv, KafkaError(code)) for slot, dlv, code in failures]  # before a freed slot goes
        by_link = []
        for slot, done, owed, acked, nbytes, latency_sum, buckets, freed in counts:
            link = links.pop(slot) if freed else links[slot]
            by_link.append((link, LaneCounts(done, owed, acked, nbytes, latency_sum, buckets)))
        return acks, by_link, failed

    def _run(self) -> None:
        poll, lane = self.lane.poll, self.lane
        while not self._stop.is_set():
            if poll(50):
                self._on_reports()
            self._serve_events()
            if lane.fatal:
                log.error("kafka producer failed fatally; replaced", extra={"error": self.last_error})
                lane.renew()

    def _serve_events(self) -> None:
        for kind, code, fatal, text in self.lane.events():
            if kind == 0:
                self.last_error = f'KafkaError{{code={KafkaError(code).name()},val={code},str="{text}"}}'
                log.warning("kafka producer error", extra={"error": self.last_error, "fatal": bool(fatal)})
            elif kind == 1:
                _client_log.log(_SYSLOG_LEVELS.get(code, 20), text)
            elif self._stats_cb is not None:
                self._stats_cb(text)

    def flush(self, timeout: float) -> int:
        return self.lane.flush(int(timeout * 1000))

    def reachable(self, timeout: float = 2.0) -> bool:
        return self.lane.reachable(int(timeout * 1000))
