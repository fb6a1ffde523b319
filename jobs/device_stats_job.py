"""spark-submit entry point: per-device statistics and outliers from Kafka (the Kafka path).

    spark-submit --jars <spark-sql-kafka jars> jobs/device_stats_job.py \\
        --kafka-bootstrap 127.0.0.1:9092 --checkpoint-dir /tmp/stats/checkpoint

Reads the bridged topic ``--source-topic`` (default ``temperature``) with
Spark's own Kafka source, parses the record values as temperature readings
(:func:`jobs.windowing.parse_readings`), and writes

* per device and event-time minute ``count, mean, min, max, stddev`` as JSON
  to ``--stats-topic`` (key = device id), and
* readings far from the device's recent mean (``is_outlier``) as JSON to
  ``--outliers-topic`` (key = device id),

each a query with its own checkpoint subfolder (``stats``, ``outliers``).
Two Kafka sources on one topic are fine (each query tracks its own offsets).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from jobs.device_stats import OutlierConfig, device_window_stats, flag_outliers
from jobs.session import build_session, run_queries
from jobs.windowing import iso_utc, parse_readings


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="jobs/device_stats_job.py", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    p.add_argument("--kafka-bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    p.add_argument("--source-topic", default="temperature")
    p.add_argument("--stats-topic", default="temperature-stats")
    p.add_argument("--outliers-topic", default="temperature-outliers")
    p.add_argument("--starting-offsets", default="earliest", help="for a fresh checkpoint: earliest or latest")
    p.add_argument("--checkpoint-dir", required=True, help="checkpoint root; one subfolder per query")
    p.add_argument("--window", default="1 minute")
    p.add_argument("--watermark", default="1 minute")
    p.add_argument("--threshold", type=float, default=OutlierConfig().threshold, help="deviations that make an outlier")
    p.add_argument("--alpha", type=float, default=OutlierConfig().alpha, help="weight of a new reading in the recent mean")
    p.add_argument("--console", action="store_true", help="print to the console instead of Kafka")
    p.add_argument("--trigger-interval", default="5 seconds")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    return p.parse_args(argv)


def read_readings(spark: SparkSession, args: argparse.Namespace) -> DataFrame:
    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.kafka_bootstrap)
        .option("subscribe", args.source_topic)
        .option("startingOffsets", args.starting_offsets)
        .load()
    )
    return parse_readings(raw, body="value")


def stats_records(stats: DataFrame) -> DataFrame:
    """Kafka records (``key``, ``value``) of the per-minute statistics."""
    tz = stats.sparkSession.conf.get("spark.sql.session.timeZone") or "UTC"
    value = F.to_json(
        F.struct(
            iso_utc("window_start", tz).alias("window_start"),
            iso_utc("window_end", tz).alias("window_end"),
            "device_id",
            "count",
            "mean",
            "min",
            "max",
            "stddev",
        )
    )
    return stats.select(F.col("device_id").alias("key"), value.alias("value"))


def outlier_records(flagged: DataFrame) -> DataFrame:
    """Kafka records of the outliers only; ``ts`` as epoch ms like the input contract."""
    value = F.to_json(F.struct("device_id", "temperature", F.unix_millis("ts").alias("ts"), "recent_mean", "recent_std"))
    return flagged.where("is_outlier").select(F.col("device_id").alias("key"), value.alias("value"))


def start_queries(spark: SparkSession, args: argparse.Namespace) -> list[StreamingQuery]:
    root = Path(args.checkpoint_dir)
    config = OutlierConfig(alpha=args.alpha, threshold=args.threshold)
    outputs = {
        "stats": (stats_records(device_window_stats(read_readings(spark, args), args.window, args.watermark)), args.stats_topic),
        "outliers": (outlier_records(flag_outliers(read_readings(spark, args), config)), args.outliers_topic),
    }
    queries = []
    for name, (records, topic) in outputs.items():
        if args.console:
            writer = records.writeStream.format("console").option("truncate", "false")
        else:
            writer = (
                records.writeStream.format("kafka").option("kafka.bootstrap.servers", args.kafka_bootstrap).option("topic", topic)
            )
        queries.append(
            writer.queryName(f"device_{name}")
            .outputMode("append")
            .option("checkpointLocation", str(root / name))
            .trigger(processingTime=args.trigger_interval)
            .start()
        )
    return queries


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    spark = build_session("device-stats")
    queries = start_queries(spark, args)
    return run_queries(spark, queries, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
