"""Prometheus metrics of one bridge instance (its own registry, so several bridges can share a process).

Series are labelled only by what operators aggregate on and what stays bounded: ``topic``
(records are counted only once Kafka or a peer took them, so only existing topics appear),
``role``/``direction``, ``reason``/``outcome`` from fixed sets. Never by link name or peer:
those are unique per client and would grow the scrape, and the process, without bound.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector


def observe_many(histogram: Histogram, amounts: list[float]) -> None:
    """``histogram.observe`` of every amount, with one update per bucket touched instead of one per amount.

    The hot paths observe a latency per message; prometheus_client's ``observe`` takes a lock
    per call (several microseconds each here). This counts the batch into buckets first and
    adds each bucket's count once, through the histogram's own ``_buckets``/``_sum`` values
    (prometheus_client 0.26, pinned; ``tests/bridge/test_hot_path.py`` compares it with
    ``observe``). Without them it falls back to ``observe`` per amount.
    """
    if not amounts:
        return
    buckets, bounds = getattr(histogram, "_buckets", None), getattr(histogram, "_upper_bounds", None)
    if buckets is None or bounds is None or len(buckets) != len(bounds):
        for amount in amounts:
            histogram.observe(amount)
        return
    counts: dict[int, int] = {}
    for amount in amounts:
        index = bisect.bisect_left(bounds, amount)  # the first bound >= amount, as observe picks it
        counts[index] = counts.get(index, 0) + 1
    observe_counts(histogram, counts.items(), math.fsum(amounts))


def observe_counts(histogram: Histogram, counts: Iterable[tuple[int, int]], total: float) -> None:
    """Add amounts already counted into ``histogram``'s buckets (``(bucket index, count)``; ``total``: their sum).

    For counts made elsewhere (the native lane counts its latencies in C, by ``histogram_bounds``).
    """
    buckets = histogram._buckets  # noqa: SLF001 - see observe_many
    histogram._sum.inc(total)  # noqa: SLF001
    for index, count in counts:
        if count and index < len(buckets):
            buckets[index].inc(count)


def histogram_bounds(histogram: Histogram) -> tuple[float, ...]:
    """The upper bounds of ``histogram``'s buckets, ``+Inf`` last (what ``observe_counts`` indexes)."""
    return tuple(histogram._upper_bounds)  # noqa: SLF001 - see observe_many


class BridgeMetrics:
    """The bridge's metrics, with process, platform and GC collectors and ``bridge_build_info``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # a --workers worker: the supervisor shows it once
            Info("bridge_build", "The bridge's version and its AMQP/Kafka client libraries", registry=r).info(build_info())
        self.messages_in = Counter(
            "bridge_amqp_to_kafka_messages", "AMQP deliveries acknowledged by Kafka", ["topic"], registry=r
        )
        self.bytes_in = Counter("bridge_amqp_to_kafka_bytes", "Record value bytes acknowledged by Kafka", ["topic"], registry=r)
        self.messages_out = Counter("bridge_kafka_to_amqp_messages", "Records accepted by AMQP peers", ["topic"], registry=r)
        self.bytes_out = Counter("bridge_kafka_to_amqp_bytes", "Record value bytes accepted by AMQP peers", ["topic"], registry=r)
        self.rejected = Counter(
            "bridge_rejected_messages", "AMQP deliveries the bridge rejected", ["topic", "reason"], registry=r
        )
        self.released = Counter(
            "bridge_released_messages", "AMQP deliveries the bridge released (Kafka failed)", ["topic"], registry=r
        )
        self.redelivered = Counter("bridge_redelivered_messages", "Records sent again after release", ["topic"], registry=r)
        self.dead_lettered = Counter(
            "bridge_dead_lettered_messages", "Records written to a dead-letter topic", ["topic"], registry=r
        )
        self.peer_rejected = Counter(
            "bridge_peer_rejected_messages", "Records the AMQP peer rejected or released", ["topic", "outcome"], registry=r
        )
        self.latency = Histogram(
            "bridge_amqp_to_kafka_latency_seconds",
            "From a complete AMQP delivery to its Kafka acknowledgement",
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )
        self.in_flight = Gauge(
            "bridge_in_flight_deliveries", "AMQP deliveries waiting for Kafka", registry=r, multiprocess_mode="livesum"
        )
        self.links = Gauge("bridge_open_links", "Open AMQP links", ["role"], registry=r, multiprocess_mode="livesum")
        self.connections = Gauge("bridge_open_connections", "Open AMQP connections", registry=r, multiprocess_mode="livesum")
        self.auth_failures = Counter("bridge_auth_failures", "Connections refused at SASL", registry=r)
        self.unauthorized = Counter(
            "bridge_unauthorized_attaches", "Links refused by the acl rules (amqp:unauthorized-access)", ["direction"], registry=r
        )
        self.kafka_errors = Counter("bridge_kafka_errors", "Kafka client errors", ["kind"], registry=r)
        self.producer_queue = Gauge(
            "bridge_kafka_producer_queue_messages",
            "Records in the producer's queue, not yet acknowledged",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.producer_queue_bytes = Gauge(
            "bridge_kafka_producer_queue_bytes", "Bytes in the producer's queue", registry=r, multiprocess_mode="livesum"
        )
        self.consumer_lag = Gauge(
            "bridge_kafka_consumer_lag",
            "Records between a receiver link's committed offset and the partition's end (librdkafka statistics)",
            ["topic", "partition", "group"],
            registry=r,
            multiprocess_mode="livesum",
        )

    def connection_opened(self, conn: Any) -> None:
        """Count ``conn`` open once (the mark lives on proton's connection record, not the Python wrapper)."""
        if not getattr(conn, "bridge_counted", False):
            conn.bridge_counted = True
            self.connections.inc()

    def connection_ended(self, conn: Any) -> None:
        """Idempotent: called on close, on error and when the transport goes, whichever comes first."""
        if getattr(conn, "bridge_counted", False):
            conn.bridge_counted = False
            self.connections.dec()

    def producer_stats_config(self, interval_s: float) -> dict[str, Any]:
        """librdkafka settings that feed the producer queue gauges (nothing when ``interval_s`` is 0)."""
        if interval_s <= 0:
            return {}
        return {"statistics.interval.ms": int(interval_s * 1000), "stats_cb": self._on_producer_stats}

    def lag_reporter(self, group: str, interval_s: float) -> LagReporter:
        """The lag gauges of one receiver link's consumer; ``close()`` it when the link goes."""
        return LagReporter(self.consumer_lag, group, interval_s)

    def _on_producer_stats(self, raw: str) -> None:
        stats = json.loads(raw)
        self.producer_queue.set(stats.get("msg_cnt", 0))
        self.producer_queue_bytes.set(stats.get("msg_size", 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LagReporter:
    """Sets ``bridge_kafka_consumer_lag`` from one consumer's librdkafka statistics; ``close()`` removes its series
    and ignores statistics that arrive after it (the consumer thread may report once more while closing)."""

    def __init__(self, gauge: Gauge, group: str, interval_s: float) -> None:
        self.gauge = gauge
        self.group = group
        self.config: dict[str, Any] = (
            {"statistics.interval.ms": int(interval_s * 1000), "stats_cb": self._on_stats} if interval_s > 0 else {}
        )
        self._series: set[tuple[str, str, str]] = set()
        self._committed: dict[int, int] = {}
        self._closed = False
        self._lock = threading.Lock()

    def committed(self, positions: dict[int, int]) -> None:
        """The link handed these commit positions (partition -> next offset) to its consumer."""
        with self._lock:
            self._committed.update(positions)

    def _on_stats(self, raw: str) -> None:
        # librdkafka's own consumer_lag follows only synchronous commits; the link's commit
        # positions are authoritative, the log-end offset comes from the statistics.
        stats = json.loads(raw)
        with self._lock:
            if self._closed:
                return
            for topic, tstats in stats.get("topics", {}).items():
                for partition, pstats in tstats.get("partitions", {}).items():
                    if partition == "-1":  # librdkafka's internal unassigned partition
                        continue
                    end = pstats.get("ls_offset", -1)
                    position = self._committed.get(int(partition))
                    lag = end - position if position is not None and end >= 0 else pstats.get("consumer_lag", -1)
                    if lag < 0:  # not assigned to this consumer, or nothing known yet
                        continue
                    labels = (topic, partition, self.group)
                    self._series.add(labels)
                    self.gauge.labels(*labels).set(max(lag, 0))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for labels in self._series:
                try:
                    self.gauge.remove(*labels)
                except KeyError:
                    pass
            self._series.clear()


def build_info() -> dict[str, str]:
    """The labels of ``bridge_build_info``. The version is read from the installed distribution here, not from the
    package's ``__init__`` (which imports the app, and so everything above the metrics)."""
    import platform

    import confluent_kafka
    import proton

    return {
        "version": _distribution_version(),
        "python": platform.python_version(),
        "proton": ".".join(str(p) for p in getattr(proton, "VERSION", ())) or "unknown",
        "proton_cyrus_sasl": str(proton.SASL.extended()).lower(),
        "librdkafka": confluent_kafka.libversion()[0],
    }


def _distribution_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("amqp-kafka-bridge")
    except PackageNotFoundError:
        return "0+unknown"
