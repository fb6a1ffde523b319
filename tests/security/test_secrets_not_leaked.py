"""Secrets never appear in what the connector and the bridge show: progress, plans, errors, logs, files, metrics.

The passwords are random canaries on a private Artemis (the session's broker knows only
admin/admin, and "admin" is also the user name), so any occurrence of one is a leak.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from proton import Message
from pyspark_amqp.options import AmqpOptionError, parse_sink_options, parse_source_options

from services.artemis import ArtemisService
from tests import amqp_clients
from tests.bridge.helpers import BridgeProcess, consume, produce
from tests.security.brokers import private_broker
from tests.waiting import wait_for

USER = "leak-check"
SECRET = f"Canary{uuid.uuid4().hex[:12]}"  # the broker's real password
WRONG = f"WrongCanary{uuid.uuid4().hex[:12]}"  # a wrong one: refused, and not shown either
KAFKA_SECRET = f"KafkaCanary{uuid.uuid4().hex[:12]}"


def leaks(text: str | bytes | None, *secrets: str) -> list[str]:
    """The secrets that occur in ``text``."""
    data = text.encode() if isinstance(text, str) else (text or b"")
    return [s for s in secrets if s.encode() in data]


def files_with(folder: Path, *secrets: str) -> dict[str, list[str]]:
    """Every file under ``folder`` (recursively) that holds one of ``secrets``; asserts there are files at all."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files, f"nothing was written under {folder}"
    return {str(p): found for p in files if (found := leaks(p.read_bytes(), *secrets))}


def cmdlines_with(*secrets: str) -> dict[int, list[str]]:
    """Processes whose command line (what ``ps`` shows) holds one of ``secrets``."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            hits = leaks(entry.read_bytes(), *secrets)
        except OSError:
            continue
        if hits:
            found[int(entry.parent.name)] = hits
    return found


class SparkOutput:
    """What the Spark JVM prints from now on: its driver log and, relayed through it, the Python workers' and
    the source's receiver processes' output.

    The JVM inherited pytest's capture files as stdout/stderr; ``/proc/<pid>/fd/1`` and ``2`` reopen them.
    ``text()`` is None when they are not files (``pytest -s``).
    """

    def __init__(self, spark) -> None:  # noqa: ANN001 - a SparkSession
        pid = spark.sparkContext._gateway.proc.pid
        self.paths = [p for p in (f"/proc/{pid}/fd/1", f"/proc/{pid}/fd/2") if stat.S_ISREG(os.stat(p).st_mode)]
        self.start = {p: os.stat(p).st_size for p in self.paths}

    def text(self) -> str | None:
        if not self.paths:
            warnings.warn("Spark's output is not captured (run without -s to check it)", stacklevel=2)
            return None
        chunks = []
        for path in self.paths:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(self.start[path] if size >= self.start[path] else 0)  # pytest may have emptied it
                chunks.append(f.read().decode("utf-8", "replace"))
        return "".join(chunks)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArtemisService]:
    """A private Artemis whose user ``USER`` has the password ``SECRET`` (wrong passwords are refused)."""
    with private_broker(tmp_path_factory.mktemp("leak-broker"), artemis_user=USER, artemis_password=SECRET) as running:
        yield running


@pytest.fixture
def spark_info_log(spark) -> Iterator[None]:  # noqa: ANN001
    """Spark's driver log at INFO for the test (it logs more then, e.g. each progress), WARN again after."""
    spark.sparkContext.setLogLevel("INFO")
    try:
        yield
    finally:
        spark.sparkContext.setLogLevel("WARN")


def with_credentials(url: str, password: str) -> str:
    return url.replace("amqp://", f"amqp://{USER}:{password}@", 1)


@pytest.mark.integration
def test_a_running_query_shows_no_password(
    spark, spark_info_log, broker: ArtemisService, unique_name: Callable[[str], str], tmp_path: Path, capsys, caplog
) -> None:
    """Source and sink with the password in the url and in the options: it is in no progress, plan, log or file."""
    caplog.set_level("INFO")
    source, target = unique_name("leak-in"), unique_name("leak-out")
    url = with_credentials(broker.url, SECRET)
    credentials = {"url": url, "user": USER, "password": SECRET}
    n = 200
    assert amqp_clients.send(broker.url, source, [Message(id=f"m-{i}", body=f"{i}") for i in range(n)])["accepted"] == n
    output = SparkOutput(spark)
    df = (
        spark.readStream.format("amqp").options(**credentials).option("address", source)
        .option("logDir", str(tmp_path / "log")).load().selectExpr("body", "message_id")
    )  # fmt: skip
    df.explain(True)  # the plan with the source's options
    query = (
        df.writeStream.format("amqp").options(**credentials).option("address", target)
        .option("checkpointLocation", str(tmp_path / "ckpt")).queryName(source.replace("-", "_")).start()
    )  # fmt: skip
    try:
        got = amqp_clients.receive(broker.url, target, n, timeout=90)
        query.processAllAvailable()
        in_ps = cmdlines_with(SECRET)  # the receiver processes run now
        query.explain(True)
        progress = [p.json for p in query.recentProgress]
        status = json.dumps(query.status)
    finally:
        query.stop()
    assert sorted(m.id for m in got) == sorted(f"m-{i}" for i in range(n))  # the credentials worked

    plans = capsys.readouterr().out
    assert "StreamingRelationV2" in plans and "password=" in plans  # the options are shown, masked
    assert not leaks(plans, SECRET), plans
    assert progress and all('"sources"' in p and '"sink"' in p for p in progress)
    assert not leaks("\n".join(progress) + status, SECRET), progress
    assert not in_ps, f"processes show the password on their command line: {in_ps}"
    assert not files_with(tmp_path / "log", SECRET)
    assert not files_with(tmp_path / "ckpt", SECRET)
    assert not leaks(caplog.text, SECRET)
    spark_output = output.text()
    if spark_output is not None:
        assert f"amqp source {source}: log recovered" in spark_output  # the receiver's log is in what was read
        assert "Streaming query made progress" in spark_output  # and so is the driver's INFO log
        assert not leaks(spark_output, SECRET), "the password is in Spark's output"


@pytest.mark.integration
def test_a_wrong_password_is_named_but_not_shown(
    spark, spark_info_log, broker: ArtemisService, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """A refused password fails the source (url) and the sink (options) with the broker's reason, never the password."""
    output = SparkOutput(spark)
    source = (
        spark.readStream.format("amqp").option("url", with_credentials(broker.url, WRONG))
        .option("address", unique_name("leak-auth")).option("startTimeout", "5").option("logDir", str(tmp_path / "log")).load()
    )  # fmt: skip
    query = source.writeStream.format("noop").option("checkpointLocation", str(tmp_path / "c1")).start()
    with pytest.raises(Exception, match="could not attach a receiver.*unauthorized-access") as source_error:
        query.awaitTermination(60)
    wait_for(lambda: not query.isActive, 10, "the source query to stop")

    rows = spark.readStream.format("rate").option("rowsPerSecond", "5").load().selectExpr("CAST(value AS STRING) AS body")
    query = (
        rows.writeStream.format("amqp").option("url", broker.url).option("user", USER).option("password", WRONG)
        .option("address", unique_name("leak-auth-out")).option("checkpointLocation", str(tmp_path / "c2")).start()
    )  # fmt: skip
    with pytest.raises(Exception, match="unauthorized-access") as sink_error:
        query.awaitTermination(60)
    wait_for(lambda: not query.isActive, 10, "the sink query to stop")

    assert not leaks(str(source_error.value), WRONG, SECRET), source_error.value
    assert not leaks(str(sink_error.value), WRONG, SECRET), sink_error.value
    assert not files_with(tmp_path / "log", WRONG, SECRET)
    spark_output = output.text()
    if spark_output is not None:
        assert "amqp:unauthorized-access" in spark_output  # the receiver's warnings are in what was read
        assert not leaks(spark_output, WRONG, SECRET), "a password is in Spark's output"


BAD_URLS = [
    f"amqp://{USER}:{SECRET}@127.0.0.1:notaport",  # bad port
    f"http://{USER}:{SECRET}@127.0.0.1:5672",  # bad scheme
    f"amqp://{USER}:{SECRET}/x@127.0.0.1:5672",  # an unencoded "/" makes the password look like the port
    f"amqp://127.0.0.1:5672,amqp://{USER}:{SECRET}@:5672",  # no host, after a good url
]


@pytest.mark.unit
@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("kind", ["source", "sink"])
def test_a_malformed_url_is_named_without_its_password(url: str, kind: str) -> None:
    with pytest.raises(AmqpOptionError, match="option 'url'") as err:
        if kind == "source":
            parse_source_options({"url": url, "address": "a", "logDir": "/tmp/unused"})
        else:
            parse_sink_options({"url": url, "address": "a"})
    assert not leaks(str(err.value), SECRET), err.value
    assert f"{USER}:***@" in str(err.value)  # which url is wrong stays recognisable


@pytest.mark.integration
def test_a_malformed_url_fails_load_without_its_password(spark) -> None:  # noqa: ANN001
    with pytest.raises(Exception, match="bad port") as err:
        spark.readStream.format("amqp").option("url", BAD_URLS[0]).option("address", "a").option("logDir", "/tmp/unused").load()
    assert not leaks(str(err.value), SECRET), err.value


@pytest.fixture
def forwarder_config(broker: ArtemisService, unique_name: Callable[[str], str], tmp_path: Path) -> dict:
    """A forwarder's YAML settings with the broker password in its url and a Kafka SASL password (passed through)."""
    return {
        "mode": "forwarder",
        "broker_urls": [with_credentials(broker.url, SECRET)],
        "routes": [
            {"address": unique_name("fwd-leak-in"), "topic": unique_name("fwd-leak-in")},
            {"address": unique_name("fwd-leak-out"), "topic": unique_name("fwd-leak-out"), "direction": "to-amqp"},
        ],
        # Kafka here has no SASL listener: librdkafka only warns that these apply to SASL, which is what is checked.
        "kafka_consumer": {"sasl.username": USER, "sasl.password": KAFKA_SECRET},
    }


@pytest.mark.integration
def test_the_forwarder_shows_no_password(
    broker: ArtemisService, forwarder_config: dict, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Broker password (url) and Kafka SASL password (file and environment): not in /metrics, /healthz, /readyz, the logs."""
    import urllib.request

    config = tmp_path / "bridge.yaml"
    config.write_text(json.dumps(forwarder_config))  # JSON is YAML
    env = {"BRIDGE_KAFKA_PRODUCER__SASL_USERNAME": USER, "BRIDGE_KAFKA_PRODUCER__SASL_PASSWORD": KAFKA_SECRET}
    bridge = BridgeProcess(kafka_bootstrap, tmp_path / "bridge.log", ["--config", str(config), "--log-level", "DEBUG"], env)
    to_kafka, to_amqp = forwarder_config["routes"]
    try:
        bridge.start()  # ready: in forwarder mode, only with the broker connection open (the password worked)
        assert amqp_clients.send(broker.url, to_kafka["address"], [Message(body=f"in-{i}") for i in range(20)])["accepted"] == 20
        assert len(consume(kafka_bootstrap, to_kafka["topic"], 20)) == 20
        produce(kafka_bootstrap, to_amqp["topic"], [{"value": f"out-{i}".encode()} for i in range(5)])
        assert len(amqp_clients.receive(broker.url, to_amqp["address"], 5, timeout=30)) == 5
        pages = {}
        for path in ("/metrics", "/healthz", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{bridge.http_port}{path}", timeout=5) as resp:
                pages[path] = resp.read().decode()
        bridge.signal(signal.SIGTERM)
        assert bridge.wait(30) == 0
    finally:
        bridge.stop()
    assert f'topic="{to_kafka["topic"]}"' in pages["/metrics"]
    for path, page in pages.items():
        assert not leaks(page, SECRET, KAFKA_SECRET), f"{path}: {page}"
    log = bridge.log.read_text()
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    messages = {e["msg"] for e in entries}
    assert {"bridge starting", "forwarder connecting", "forwarder connected", "bridge stopped"} <= messages
    starting = next(e for e in entries if e["msg"] == "bridge starting")
    assert starting["settings"]["broker_urls"] == [with_credentials(broker.url, "***")]
    assert not leaks(log, SECRET, KAFKA_SECRET), "a password is in the bridge's log"


@pytest.mark.integration
def test_a_forwarder_with_a_wrong_password_says_why_without_the_password(
    broker: ArtemisService, forwarder_config: dict, kafka_bootstrap: str, tmp_path: Path
) -> None:
    import urllib.error
    import urllib.request

    config = tmp_path / "bridge.yaml"
    config.write_text(json.dumps({**forwarder_config, "broker_urls": [with_credentials(broker.url, WRONG)]}))
    bridge = BridgeProcess(kafka_bootstrap, tmp_path / "bridge.log", ["--config", str(config)])
    try:
        bridge.start(wait=False)
        line = wait_for(
            lambda: next((x for x in bridge.log.read_text().splitlines() if "cannot use the broker connection" in x), None),
            30,
            "the forwarder's log line about the refused connection",
        )
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(f"http://127.0.0.1:{bridge.http_port}/readyz", timeout=5)
        assert not_ready.value.code == 503
    finally:
        bridge.stop()
    assert json.loads(line)["reason"].startswith("amqp:unauthorized-access")
    assert not leaks(bridge.log.read_text(), WRONG, SECRET), "a password is in the bridge's log"


@pytest.mark.unit
def test_invalid_bridge_settings_are_named_without_passwords(tmp_path: Path, monkeypatch, capsys) -> None:
    from amqp_kafka_bridge.__main__ import main

    config = tmp_path / "bridge.yaml"
    config.write_text(json.dumps({"mode": "forwarder", "broker_urls": [f"amqp://{USER}:{SECRET}@127.0.0.1:5672"], "workers": 2}))
    monkeypatch.setenv("BRIDGE_KAFKA_PRODUCER__SASL_PASSWORD", KAFKA_SECRET)
    assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "invalid settings" in err and "workers > 1" in err
    assert not leaks(err, SECRET, KAFKA_SECRET), err
