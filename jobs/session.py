"""The SparkSession the jobs run in, with the settings every job relies on.

Session time zone UTC (the result contract's times are UTC, and windows align
to UTC), few shuffle partitions (the aggregations are small; the default 200
makes every micro-batch slow), Python workers on this interpreter, and the
repository root importable on workers (``connectors``, ``jobs``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

REPO_ROOT = Path(__file__).resolve().parent.parent


def build_session(app_name: str, shuffle_partitions: int = 2, packages: str | None = None) -> SparkSession:
    """Get or create the session; ``packages`` (Maven coordinates) only apply if the JVM is not up yet.

    Pitfall: under ``spark-submit`` the JVM already runs, so pass
    ``--packages``/``--jars`` to spark-submit instead.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    path = os.environ.get("PYTHONPATH", "")
    if str(REPO_ROOT) not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), path) if p)
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
    )
    if packages:
        builder = builder.config("spark.jars.packages", packages)
    spark = builder.getOrCreate()
    # getOrCreate returns an existing session unchanged: set what matters again.
    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark


def progress_summary(progress: dict) -> dict:
    """One micro-batch's progress (``query.lastProgress``) reduced to what an operator watches.

    ``observed``: the metrics a job declared with ``DataFrame.observe`` (e.g. malformed
    readings); ``dropped_duplicates`` / ``dropped_late``: rows Spark's state operators
    dropped as repeats within the watermark / as too late.
    """
    operators = progress.get("stateOperators") or []
    return {
        "query": progress.get("name"),
        "batch": progress.get("batchId"),
        "input_rows": progress.get("numInputRows"),
        "observed": progress.get("observedMetrics") or {},
        "dropped_duplicates": sum(int(op.get("customMetrics", {}).get("numDroppedDuplicateRows", 0)) for op in operators),
        "dropped_late": sum(int(op.get("numRowsDroppedByWatermark", 0)) for op in operators),
    }


def log_progress(spark: SparkSession) -> None:
    """Print one JSON line per micro-batch (``progress {...}``, see :func:`progress_summary`) to stderr."""
    import json

    from pyspark.sql.streaming import StreamingQueryListener

    class _ProgressLine(StreamingQueryListener):
        def onQueryStarted(self, event) -> None:  # noqa: N802 (Spark's names)
            pass

        def onQueryProgress(self, event) -> None:  # noqa: N802
            print("progress " + json.dumps(progress_summary(json.loads(event.progress.json))), file=sys.stderr, flush=True)

        def onQueryIdle(self, event) -> None:  # noqa: N802
            pass

        def onQueryTerminated(self, event) -> None:  # noqa: N802
            pass

    spark.streams.addListener(_ProgressLine())


def run_queries(spark: SparkSession, queries: list, timeout: float | None) -> int:
    """Wait until a query ends, SIGTERM/Ctrl-C, or ``timeout`` seconds; stop them all; 1 if any failed.

    The signals only set a flag, so the queries are stopped from this (the main) thread
    rather than from inside a py4j call that the signal interrupted.
    """
    import signal
    import threading
    import time

    from pyspark.errors import StreamingQueryException

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if spark.streams.awaitAnyTermination(1.0):
                break
    except StreamingQueryException:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for q in queries:
            q.stop()
    failed = [q for q in queries if q.exception() is not None]
    for q in failed:
        print(f"query {q.name} failed: {q.exception()}", file=sys.stderr)
    return 1 if failed else 0
