"""spark-submit entry point: the 5-second windowed max, AMQP in, AMQP and Kafka out.

    spark-submit --jars <spark-sql-kafka jars> jobs/windowed_max.py \\
        --amqp-url amqp://127.0.0.1:5672 --kafka-bootstrap 127.0.0.1:9092 \\
        --checkpoint-dir /tmp/wm/checkpoint --log-dir /tmp/wm/amqp-log

AMQP ``--source-address`` (or, with ``--source kafka``, the Kafka topic ``--source-topic``
that the bridge fills, through Spark's own Kafka source) -> parse JSON -> :func:`jobs.windowing.windowed_max`
(append mode: a window is emitted once the watermark passes its end) -> AMQP
``--sink-address`` and Kafka ``--kafka-topic`` (and the console on request).

By default one query reads the source and ``foreachBatch`` writes each
micro-batch to every sink (checkpoint subfolder ``all``): the only correct
shape when ``--source-address`` is an anycast queue (the local Artemis
auto-creates anycast queues), because two AMQP sources on one queue would
split its messages between them. Writes are at-least-once per sink on replay
(the Kafka key and the window start identify a duplicate). It needs batch
writes (``df.write.format("amqp")``) from the AMQP connector.

``--query-per-sink`` runs one streaming query per sink instead, each with its
own checkpoint subfolder (``amqp``, ``kafka``, ``console``) and its own AMQP
source log subfolder of ``--log-dir``; each query then needs its *own copy*
of the readings, i.e. a multicast address.

Restarting with the same checkpoint and log resumes without losing windows.

Bad input is skipped and counted: each micro-batch prints a ``progress {...}``
line on stderr with the ``messages`` and ``malformed`` readings it saw, the
resent readings it dropped (a reading repeated verbatim), and the ones
dropped as too late.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from jobs.session import build_session, log_progress, run_queries
from jobs.windowing import parse_readings, to_result_json, windowed_max


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="jobs/windowed_max.py", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    p.add_argument("--amqp-url", default=os.environ.get("AMQP_URL", "amqp://127.0.0.1:5672"))
    p.add_argument(
        "--source",
        choices=("amqp", "kafka"),
        default="amqp",
        help="read the readings from AMQP (the amqp source) or from the Kafka topic the bridge fills (Spark's Kafka source)",
    )
    p.add_argument("--source-address", default="temperature")
    p.add_argument("--source-topic", default="temperature", help="--source kafka: the topic of the readings")
    p.add_argument("--sink-address", default="max", help="AMQP address of the results ('' for none)")
    p.add_argument(
        "--kafka-bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        help="Kafka bootstrap servers ('' for no Kafka sink)",
    )
    p.add_argument("--kafka-topic", default="max")
    p.add_argument("--checkpoint-dir", required=True, help="checkpoint root; one subfolder per sink")
    p.add_argument("--log-dir", help="the AMQP source's write-ahead log (required with --source amqp)")
    p.add_argument(
        "--no-shared-log-dir",
        dest="shared_log_dir",
        action="store_false",
        help="executors cannot read --log-dir (no shared storage): the driver ships each micro-batch in its tasks",
    )
    p.add_argument("--window", default="5 seconds")
    p.add_argument("--watermark", default="10 seconds")
    p.add_argument("--console", action="store_true", help="also print each window on the console")
    p.add_argument("--trigger-interval", default="1 second", help="micro-batch interval ('0' = as fast as possible)")
    p.add_argument("--max-messages-per-trigger", type=int, default=None)
    p.add_argument(
        "--query-per-sink", action="store_true", help="one streaming query per sink (needs a multicast source address)"
    )
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds (tests, demos)")
    args = p.parse_args(argv)
    if args.source == "amqp" and not args.log_dir:
        p.error("--log-dir is required with --source amqp: the folder of the AMQP source's write-ahead log")
    if args.source == "kafka" and not args.kafka_bootstrap:
        p.error("--source kafka needs --kafka-bootstrap")
    return args


def read_temperatures(spark: SparkSession, args: argparse.Namespace, log_dir: Path | None) -> DataFrame:
    """The raw readings with a ``body`` column, from AMQP or from Kafka (``--source``)."""
    if args.source == "kafka":
        # Spark's own Kafka source: the scale-out path (bridge replicas -> Kafka cluster -> Spark).
        # Its offsets are in the checkpoint, so a restart resumes without a log of its own.
        reader = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", args.kafka_bootstrap)
            .option("subscribe", args.source_topic)
            .option("startingOffsets", "earliest")
            .option("failOnDataLoss", "true")
        )
        if args.max_messages_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", str(args.max_messages_per_trigger))
        return reader.load().selectExpr("value AS body")
    # The installed pyspark-amqp registers itself (``pyspark_amqp.DefaultSource``): no import here.
    reader = (
        spark.readStream.format("amqp")
        .option("url", args.amqp_url)
        .option("address", args.source_address)
        .option("logDir", str(log_dir))
        .option("sharedLogDir", str(args.shared_log_dir).lower())
    )
    if args.max_messages_per_trigger:
        reader = reader.option("maxMessagesPerTrigger", str(args.max_messages_per_trigger))
    return reader.load()


def build_results(spark: SparkSession, args: argparse.Namespace, log_dir: Path | None) -> DataFrame:
    """The result stream: ``key`` (window start, ISO UTC) and ``body`` (the result JSON)."""
    readings = parse_readings(read_temperatures(spark, args, log_dir), observe_as="readings")
    return to_result_json(windowed_max(readings, window=args.window, watermark=args.watermark))


def _trigger(args: argparse.Namespace) -> dict[str, str]:
    return {"processingTime": args.trigger_interval} if args.trigger_interval != "0" else {}


def _amqp_rows(results: DataFrame) -> DataFrame:
    return results.selectExpr("body", "'application/json' AS content_type")


def _kafka_rows(results: DataFrame) -> DataFrame:
    return results.selectExpr("key", "body AS value")


def start_queries(spark: SparkSession, args: argparse.Namespace) -> list[StreamingQuery]:
    """One query per sink, each with its own checkpoint and source-log subfolder."""
    root, logs = Path(args.checkpoint_dir), Path(args.log_dir or args.checkpoint_dir)
    sinks = [name for name, on in (("amqp", args.sink_address), ("kafka", args.kafka_bootstrap), ("console", args.console)) if on]
    if not sinks:
        raise SystemExit("no sink: give --sink-address, --kafka-bootstrap or --console")
    queries = []
    for sink in sinks:
        results = build_results(spark, args, logs / sink)
        if sink == "amqp":
            writer = (
                _amqp_rows(results).writeStream.format("amqp").option("url", args.amqp_url).option("address", args.sink_address)
            )
        elif sink == "kafka":
            writer = (
                _kafka_rows(results)
                .writeStream.format("kafka")
                .option("kafka.bootstrap.servers", args.kafka_bootstrap)
                .option("topic", args.kafka_topic)
            )
        else:
            writer = results.select("body").writeStream.format("console").option("truncate", "false")
        queries.append(
            writer.queryName(f"windowed_max_{sink}")
            .outputMode("append")
            .option("checkpointLocation", str(root / sink))
            .trigger(**_trigger(args))
            .start()
        )
    return queries


def start_single_query(spark: SparkSession, args: argparse.Namespace) -> StreamingQuery:
    """One source, one checkpoint; each micro-batch is written to every sink in turn."""
    if not (args.sink_address or args.kafka_bootstrap or args.console):
        raise SystemExit("no sink: give --sink-address, --kafka-bootstrap or --console")

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        batch.persist()
        try:
            if args.sink_address:
                _amqp_rows(batch).write.format("amqp").mode("append").option("url", args.amqp_url).option(
                    "address", args.sink_address
                ).save()
            if args.kafka_bootstrap:
                _kafka_rows(batch).write.format("kafka").option("kafka.bootstrap.servers", args.kafka_bootstrap).option(
                    "topic", args.kafka_topic
                ).save()
            if args.console and not batch.isEmpty():
                batch.orderBy("key").select("body").show(truncate=False)
        finally:
            batch.unpersist()

    results = build_results(spark, args, Path(args.log_dir) if args.log_dir else None)
    return (
        results.writeStream.queryName("windowed_max")
        .outputMode("append")
        .foreachBatch(write_batch)
        .option("checkpointLocation", str(Path(args.checkpoint_dir) / "all"))
        .trigger(**_trigger(args))
        .start()
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    spark = build_session("windowed-max")
    log_progress(spark)
    queries = start_queries(spark, args) if args.query_per_sink else [start_single_query(spark, args)]
    return run_queries(spark, queries, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
