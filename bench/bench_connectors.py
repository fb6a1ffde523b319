"""The amqp source and sink against a raw python-qpid-proton loop on the same broker.

- ingest: the source's receiving side alone (receive -> write-ahead log -> fsync -> accept),
  1 and 2 receivers, against a raw receive-and-accept loop;
- query: messages/s through a running streaming query (noop sink), first row to last;
- sink: ``df.write.format("amqp")`` against a raw unsettled sender.

``python -m bench.bench_connectors [--messages N] [--json FILE]``; ``--json`` writes every
figure and ratio with its same-run baseline (bench.results).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path

from bench.common import raw_receive, raw_send, report, services
from bench.results import Results, add_json_argument


def _ingest_rate(url: str, address: str, count: int, receivers: int, log_dir: Path) -> float:
    from amqp_message_model.connection import ConnectionOptions, parse_endpoints
    from pyspark_amqp.ingest import IngestProcess, IngestSpec

    procs = [
        IngestProcess(
            IngestSpec(
                ConnectionOptions(parse_endpoints(url)),
                address,
                log_dir / f"r{i}",
                1000,
                10**9,
                False,
                64 << 20,
                f"bench-{uuid.uuid4().hex[:6]}",
            )
        )
        for i in range(receivers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.wait_attached(60)
    first_at = None
    first_total = 0
    try:
        while True:
            total = sum(p.durable for p in procs)
            now = time.perf_counter()
            if total and first_at is None:
                first_at, first_total = now, total
            if total >= count:
                if total - first_total < count // 2:  # most arrived before the first look: no rate to speak of
                    raise ValueError(f"{count} messages were ingested too fast to time: use --messages 20000 or more")
                return (total - first_total) / max(now - (first_at or now), 1e-9)
            time.sleep(0.01)
    finally:
        for p in procs:
            p.stop()


def _query_rate(url: str, address: str, count: int, tmp: Path, receivers: int, shared_log_dir: bool = True) -> float:
    from pyspark.sql import SparkSession
    from pyspark_amqp import AmqpDataSource

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.dataSource.register(AmqpDataSource)
    df = (
        spark.readStream.format("amqp").option("url", url).option("address", address)
        .option("logDir", str(tmp / "qlog")).option("receivers", str(receivers))
        .option("sharedLogDir", str(shared_log_dir).lower()).load()
    )  # fmt: skip
    query = df.writeStream.format("noop").option("checkpointLocation", str(tmp / "qckpt")).start()
    try:
        done = 0
        first = None
        deadline = time.monotonic() + 300
        while done < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"query processed {done} of {count} in 300 s; status {query.status}")
            query.awaitTermination(0.05)
            done = sum(p["numInputRows"] for p in query.recentProgress)
            if done and first is None:
                progress = query.recentProgress[0]
                first = time.perf_counter() - progress["durationMs"]["triggerExecution"] / 1000
        return done / (time.perf_counter() - first)
    finally:
        query.stop()


def _sink_rate(url: str, address: str, count: int, partitions: int = 1) -> float:
    """``df.write.format("amqp")`` of ``count`` cached 64-byte rows in ``partitions`` tasks, messages/s."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    df = spark.range(count).selectExpr("CAST(repeat('x', 64) AS BINARY) AS body").repartition(partitions).cache()
    df.count()
    start = time.perf_counter()
    df.write.format("amqp").option("url", url).option("address", address).mode("append").save()
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--skip-query", action="store_true", help="skip the streaming-query runs (they start Spark twice)")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    n = args.messages
    res = Results("bench_connectors", {"messages": n, "body_bytes": 64})
    with services() as (url, _), tempfile.TemporaryDirectory(prefix="bench-connectors-") as tmp_name:
        tmp = Path(tmp_name)
        run = uuid.uuid4().hex[:6]

        def preload(address: str) -> None:
            raw_send(url, address, n)

        print(f"amqp connectors, {n:,} messages of 64 bytes, broker {url}")
        preload(f"bench-raw-{run}")
        raw = res.figure("raw_receive", raw_receive(url, f"bench-raw-{run}", n), "msg/s")
        report("raw proton receive loop (baseline)", raw, "raw receive", raw)
        for receivers in (1, 2):
            preload(f"bench-ingest{receivers}-{run}")
            rate = _ingest_rate(url, f"bench-ingest{receivers}-{run}", n, receivers, tmp / f"ingest{receivers}")
            res.figure(f"source_ingest_{receivers}rx", rate, "msg/s", "receive -> log -> fsync -> accept")
            res.ratio(f"source_ingest_{receivers}rx_vs_raw_receive", f"source_ingest_{receivers}rx", "raw_receive")
            report(f"source ingest, {receivers} receiver(s) (log+fsync+accept)", rate, "raw receive", raw)
        for receivers in () if args.skip_query else (1, 2):
            preload(f"bench-query{receivers}-{run}")
            rate = _query_rate(url, f"bench-query{receivers}-{run}", n, tmp / f"q{receivers}", receivers)
            res.figure(f"source_query_{receivers}rx", rate, "msg/s", "streaming query, noop sink, first row to last")
            res.ratio(f"source_query_{receivers}rx_vs_raw_receive", f"source_query_{receivers}rx", "raw_receive")
            report(f"streaming query, {receivers} receiver(s), noop sink", rate, "raw receive", raw)
        if not args.skip_query:
            # sharedLogDir=false: the driver reads each batch from the log and ships it in the tasks.
            preload(f"bench-query-noshared-{run}")
            rate = _query_rate(url, f"bench-query-noshared-{run}", n, tmp / "q-noshared", 1, shared_log_dir=False)
            res.figure("source_query_1rx_no_shared_log", rate, "msg/s", "sharedLogDir=false: records travel in the tasks")
            res.ratio("source_query_no_shared_vs_shared", "source_query_1rx_no_shared_log", "source_query_1rx")
            report("streaming query, 1 receiver, sharedLogDir=false", rate, "shared log", res.value("source_query_1rx"))
        raw_tx = res.figure("raw_send", raw_send(url, f"bench-rawtx-{run}", n), "msg/s", "unsettled proton sender")
        report("raw proton unsettled sender (baseline)", raw_tx, "raw send", raw_tx)
        # The first write of a session also starts the Python workers and imports the sink: a
        # one-off cost per executor, measured on its own; the steady rate is from the next write.
        rate = res.figure("sink_first_write", _sink_rate(url, f"bench-sink-{run}", n), "msg/s", "first write of the session")
        res.ratio("sink_first_write_vs_raw_send", "sink_first_write", "raw_send")
        report("sink: first write of the session, 1 task", rate, "raw send", raw_tx)
        rate = res.figure("sink", _sink_rate(url, f"bench-sink-{run}", n), "msg/s", "df.write.format('amqp'), 1 task, warm")
        res.ratio("sink_vs_raw_send", "sink", "raw_send", target=0.8)
        report("sink: df.write.format('amqp'), 1 task", rate, "raw send", raw_tx)
        rate = res.figure("sink_2tasks", _sink_rate(url, f"bench-sink-{run}", n, partitions=2), "msg/s", "2 tasks, 2 connections")
        res.ratio("sink_2tasks_vs_raw_send", "sink_2tasks", "raw_send")
        report("sink: df.write.format('amqp'), 2 tasks", rate, "raw send", raw_tx)
        # Nobody reads what the send measurements wrote: take it off the broker, or runs against a long-lived
        # broker (`make up`) pile up 4 x --messages per run until it pages and, with a small heap, fails.
        raw_receive(url, f"bench-rawtx-{run}", n)
        raw_receive(url, f"bench-sink-{run}", 3 * n)
    res.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
