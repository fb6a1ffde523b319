"""A user's own Spark script reads AMQP with nothing but the installed wheels: no checkout, no ``register``."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import amqp_clients
from tests.amqp_clients import Message
from tests.packaging.venvs import new_venv, wheel_version

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# The whole user script: format("amqp") resolves through Spark's lookup of installed pyspark_* modules.
USER_SCRIPT = textwrap.dedent(
    """\
    import json, sys, time
    from pyspark.sql import SparkSession
    url, address, log_dir, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    df = spark.readStream.format("amqp").option("url", url).option("address", address).option("logDir", log_dir).load()
    query = df.selectExpr("CAST(body AS STRING) AS body").writeStream.format("memory").queryName("got").start()
    deadline = time.monotonic() + 180
    while spark.table("got").count() < expected and time.monotonic() < deadline and query.isActive:
        time.sleep(0.5)
    print(json.dumps(sorted(row.body for row in spark.table("got").collect())))
    """
)


def test_a_new_venv_with_the_connector_wheel_reads_amqp_without_register(
    project_wheels: Path, amqp_url: str, unique_name: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    user = new_venv(tmp_path_factory.mktemp("connector-user") / "venv")
    # pyspark==4.2.0 comes from the registry (or pip's cache), pinned by the repository's constraints.
    user.pip_install(project_wheels, "pyspark-amqp")

    shown = user.run([str(user.python), "-m", "pip", "show", "pyspark-amqp"], timeout=120)
    assert f"Version: {wheel_version(project_wheels, 'pyspark-amqp')}" in shown.stdout
    assert f"Location: {user.root}" in shown.stdout, shown.stdout  # the wheel, not an editable checkout

    address = unique_name("installed")
    bodies = [f"reading {i}" for i in range(5)]
    assert amqp_clients.send(amqp_url, address, [Message(body=b.encode()) for b in bodies])["accepted"] == 5
    script = user.root / "read_amqp.py"
    script.write_text(USER_SCRIPT)
    assert len(USER_SCRIPT.splitlines()) <= 10 and "register" not in USER_SCRIPT

    # Run as from an activated venv: Spark's Python workers start `python3` from PATH, i.e. the venv's.
    done = user.run(
        [str(user.python), str(script), amqp_url, address, str(user.root / "amqp-log"), str(len(bodies))],
        timeout=600, extra_env={"SPARK_LOCAL_IP": "127.0.0.1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == sorted(bodies), done.stderr[-4000:]
