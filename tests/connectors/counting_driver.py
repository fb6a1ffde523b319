"""A Spark driver program for the crash test: count messages per device from the amqp source.

Run as ``python -m tests.connectors.counting_driver URL ADDRESS STATE_DIR``. After every
micro-batch it replaces ``STATE_DIR/counts.json`` with the complete aggregate (a
checkpointed, stateful count), and its main loop replaces ``STATE_DIR/progress.json``
with the source's latest and processed offsets, so a test can tell when it is caught up.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _atomic_write(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def main(argv: list[str]) -> None:
    url, address, state = argv[0], argv[1], Path(argv[2])
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession
    from pyspark_amqp import AmqpDataSource

    spark = (
        SparkSession.builder.master("local[2]").config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false").getOrCreate()
    )  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    spark.dataSource.register(AmqpDataSource)
    counts = (
        spark.readStream.format("amqp").option("url", url).option("address", address)
        .option("logDir", str(state / "log")).option("maxMessagesPerTrigger", "2000")
        .option("maxBufferedMessages", "3000").option("credit", "500").load()
        .selectExpr("application_properties['device_id'] AS device").groupBy("device").count()
    )  # fmt: skip

    def publish(batch, batch_id: int) -> None:
        _atomic_write(state / "counts.json", {r.device: r["count"] for r in batch.collect()})

    query = (
        counts.writeStream.outputMode("complete").foreachBatch(publish)
        .option("checkpointLocation", str(state / "checkpoint")).start()
    )  # fmt: skip
    while query.isActive:
        progress = query.lastProgress
        if progress and progress["sources"]:
            src = progress["sources"][0]
            _atomic_write(
                state / "progress.json", {"latest": src["latestOffset"], "end": src["endOffset"], "batch": progress["batchId"]}
            )
        time.sleep(0.2)


if __name__ == "__main__":
    main(sys.argv[1:])
