"""``docker-compose.yml`` and ``Dockerfile`` checked without Docker: entry points, URLs, ports, versions.

What a typo would otherwise break only at ``docker compose up`` on someone else's machine:
every command of this project's services runs an entry point that exists here; the URLs one
service uses point at the host and port another service listens on; the shared volume is
at the same path in the driver and the worker; the versions agree with the pins elsewhere.
``docker compose config`` runs too where a Docker engine answers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
APP = "/app"  # WORKDIR of the project image: the repository root inside the container
OWN_IMAGE_SERVICES = {"spark-worker", "bridge", "windowed-max", "simulator", "receiver", "jupyter"}
_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def interpolate(value: Any) -> Any:
    """Compose's ``${VAR:-default}`` with the defaults only (the checked-in configuration), ``$$`` -> ``$``."""
    if isinstance(value, str):
        marker = "\0"
        text = value.replace("$$", marker)
        text = _VAR.sub(lambda m: m.group(2) or "", text)
        return text.replace(marker, "$")
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE.read_text()))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: "" if v is None else str(v) for k, v in raw.items()}


def repo_path(container_path: str) -> Path:
    assert container_path.startswith(APP + "/"), f"{container_path} is not inside {APP}"
    return REPO_ROOT / container_path[len(APP) + 1 :]


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}


def test_the_whole_story_is_there(services: dict[str, dict[str, Any]]) -> None:
    assert {"artemis", "kafka", "spark-master"} | OWN_IMAGE_SERVICES <= set(services)
    assert services["artemis"]["image"] == "apache/activemq-artemis:2.40.0"
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["spark-master"]["image"].startswith("apache/spark:")
    for name in OWN_IMAGE_SERVICES:
        build = services[name].get("build") or {}
        assert build.get("context") == "." and build.get("dockerfile") == "Dockerfile", (
            f"{name} must use the project's Dockerfile"
        )


def test_every_command_runs_an_entry_point_of_this_repository(services: dict[str, dict[str, Any]]) -> None:
    venv_bin = Path(sys.executable).parent
    for name in OWN_IMAGE_SERVICES:
        command = services[name]["command"]
        assert isinstance(command, list), f"{name}: use the exec form (a list), so signals reach the process"
        if command[:2] == ["python", "-m"]:
            module = REPO_ROOT / command[2].replace(".", "/")
            assert module.with_suffix(".py").is_file() or (module / "__main__.py").is_file(), f"{name}: no module {command[2]}"
        elif command[0].startswith(APP):
            script = repo_path(command[0])
            assert script.is_file() and os.access(script, os.X_OK), f"{name}: {script} missing or not executable"
        else:  # a tool the requirements install (spark-class from pyspark, jupyter)
            assert (venv_bin / command[0]).is_file(), f"{name}: {command[0]} is not installed by requirements.txt"


def test_files_the_services_read_exist(services: dict[str, dict[str, Any]]) -> None:
    routes = repo_path(env(services["bridge"])["BRIDGE_ROUTES_FILE"])
    assert yaml.safe_load(routes.read_text())["routes"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (REPO_ROOT / source).exists() or source == "./notebooks", f"{name}: {source} does not exist"
    assert (REPO_ROOT / "deploy" / "compose" / "artemis" / "broker.properties").is_file()


def test_amqp_urls_point_at_artemis(services: dict[str, dict[str, Any]]) -> None:
    artemis_ports = container_ports(services["artemis"])
    urls = [(name, env(s).get("AMQP_URL")) for name, s in services.items() if env(s).get("AMQP_URL")]
    urls += [(f"bridge broker {u}", u) for u in json.loads(env(services["bridge"])["BRIDGE_BROKER_URLS"])]
    assert len(urls) >= len(OWN_IMAGE_SERVICES)
    for name, url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port) == ("amqp", "artemis", 5672), f"{name}: {url}"
        assert parts.port in artemis_ports
        if parts.username:
            a = env(services["artemis"])
            assert (parts.username, parts.password) == (a["ARTEMIS_USER"], a["ARTEMIS_PASSWORD"]), f"{name}: wrong credentials"


def test_kafka_bootstrap_is_an_advertised_listener(services: dict[str, dict[str, Any]]) -> None:
    kafka = env(services["kafka"])
    advertised = {urlsplit(u).netloc: urlsplit(u).scheme for u in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    listeners = {urlsplit(u).scheme: urlsplit(u).port for u in kafka["KAFKA_LISTENERS"].split(",")}
    for name in OWN_IMAGE_SERVICES:
        bootstrap = env(services[name]).get("KAFKA_BOOTSTRAP")
        if bootstrap:
            assert bootstrap in advertised, f"{name}: {bootstrap} is not advertised by kafka ({sorted(advertised)})"
            assert listeners[advertised[bootstrap]] == int(bootstrap.rsplit(":", 1)[1])
    # the host's listener is the published port, and the healthcheck asks a real listener
    host_listener = next(netloc for netloc, scheme in advertised.items() if netloc.startswith("localhost:"))
    assert int(host_listener.rsplit(":", 1)[1]) in container_ports(services["kafka"])
    assert "kafka:19092" in " ".join(services["kafka"]["healthcheck"]["test"])


def test_spark_master_worker_and_driver_agree(services: dict[str, dict[str, Any]]) -> None:
    master = services["spark-master"]["command"]
    master_url = f"spark://{option(master, '--host')}:{option(master, '--port')}"
    worker = services["spark-worker"]["command"]
    assert worker[-1] == master_url
    assert env(services["windowed-max"])["SPARK_MASTER_URL"] == master_url
    assert option(master, "--port") in " ".join(services["spark-master"]["healthcheck"]["test"])
    assert f"localhost:{option(worker, '--webui-port')}" in " ".join(services["spark-worker"]["healthcheck"]["test"])
    assert int(option(master, "--webui-port")) in container_ports(services["spark-master"])
    job = services["windowed-max"]
    assert env(job)["SPARK_DRIVER_HOST"] == job["hostname"]


def test_the_log_dir_and_checkpoints_are_shared_at_one_path(services: dict[str, dict[str, Any]]) -> None:
    def mounts(name: str) -> dict[str, str]:
        return dict(str(v).split(":")[:2] for v in services[name].get("volumes", []))

    shared = env(services["windowed-max"])["SHARED_DIR"]
    driver, worker = mounts("windowed-max"), mounts("spark-worker")
    named = {src for src, dst in driver.items() if dst == shared}
    assert named and not next(iter(named)).startswith("."), "the shared folder must be a named volume (or NFS)"
    assert worker.get(next(iter(named))) == shared, "the worker must mount the driver's shared volume at the same path"


def test_bridge_settings_and_health_port(services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    from amqp_kafka_bridge.settings import BridgeSettings

    bridge_env = env(services["bridge"])
    fields = {f.upper() for f in BridgeSettings.model_fields}
    unknown = [k for k in bridge_env if k.startswith("BRIDGE_") and k.removeprefix("BRIDGE_").split("__")[0] not in fields]
    assert not unknown, f"the bridge has no settings {unknown}"
    for key in [k for k in os.environ if k.startswith("BRIDGE_") or k == "KAFKA_BOOTSTRAP"]:
        monkeypatch.delenv(key)
    for key, value in bridge_env.items():
        monkeypatch.setenv(key, value)
    routes = repo_path(bridge_env["BRIDGE_ROUTES_FILE"])
    monkeypatch.setenv("BRIDGE_ROUTES_FILE", str(routes))
    settings = BridgeSettings.load()
    assert settings.mode == "forwarder" and settings.routes
    assert settings.broker_urls == json.loads(bridge_env["BRIDGE_BROKER_URLS"])
    assert settings.kafka_bootstrap == bridge_env["KAFKA_BOOTSTRAP"]
    assert f"localhost:{settings.http_port}/" in " ".join(services["bridge"]["healthcheck"]["test"])
    assert settings.http_host == "0.0.0.0", "the healthcheck and other containers must reach the bridge's HTTP port"


def test_addresses_match_the_broker_queues(services: dict[str, dict[str, Any]]) -> None:
    """The job and the bridge each read their own queue of the multicast address the simulator publishes to."""
    props = (REPO_ROOT / "deploy" / "compose" / "artemis" / "broker.properties").read_text()
    queues = set(re.findall(r"^addressConfigurations\.(\w+)\.queueConfigs\.(\w+)\.routingType=MULTICAST$", props, re.M))
    from amqp_kafka_bridge.settings import BridgeSettings

    bridge_routes = (
        BridgeSettings(routes_file=None).with_routes_file(repo_path(env(services["bridge"])["BRIDGE_ROUTES_FILE"])).routes
    )
    consumed = [env(services["windowed-max"])["SOURCE_ADDRESS"]] + [r.address for r in bridge_routes if r.direction == "to-kafka"]
    fqqns = {tuple(a.split("::")) for a in consumed}
    assert fqqns <= queues, f"{consumed} are not queues of broker.properties ({queues})"
    assert len(fqqns) == len(consumed), "the job and the bridge must not compete for one queue"
    published = option(services["simulator"]["command"], "--address")
    assert {address for address, _ in fqqns} == {published}
    assert option(services["receiver"]["command"], "--address") == env(services["windowed-max"])["SINK_ADDRESS"]


def test_depends_on_waits_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert spec["condition"] in ("service_healthy", "service_started", "service_completed_successfully")
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy but it has no healthcheck"
    assert set(services["windowed-max"]["depends_on"]) == {"artemis", "kafka", "spark-worker"}


def test_the_submit_script_builds_a_valid_job_command(services: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """Run the job's submit script with a fake spark-submit that records its arguments, then parse them as the job would."""
    job = services["windowed-max"]
    script = repo_path(job["command"][0])
    fake = tmp_path / "spark-submit"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    run_env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", **env(job), "SPARK_KAFKA_JARS": "/opt/spark-kafka/a.jar"}
    done = subprocess.run(["sh", str(script)], env=run_env, capture_output=True, text=True, timeout=30, check=True)
    argv = done.stdout.splitlines()
    assert option(argv, "--master") == env(job)["SPARK_MASTER_URL"]
    archive = option(argv, "--py-files")
    assert Path(archive).name == "jobs.zip"
    assert re.search(r"pip install [^\n]*\n[^\n]*pyspark-amqp", DOCKERFILE.read_text()), "the image must install the connector"
    assert f"--out-dir {Path(archive).parent}" in DOCKERFILE.read_text(), (
        "the archive the job ships must be the one the image builds"
    )
    entry = next(a for a in argv if a.endswith(".py"))
    assert repo_path(entry).is_file()
    from jobs import windowed_max

    args = windowed_max.parse_args(argv[argv.index(entry) + 1 :])
    assert args.amqp_url == env(job)["AMQP_URL"] and args.kafka_bootstrap == env(job)["KAFKA_BOOTSTRAP"]
    assert args.log_dir.startswith(env(job)["SHARED_DIR"] + "/") and args.checkpoint_dir.startswith(env(job)["SHARED_DIR"] + "/")


def test_versions_agree_with_the_pins(services: dict[str, dict[str, Any]]) -> None:
    from services.settings import ARTEMIS_VERSION

    pyspark_pin = re.search(r"^pyspark==(\S+)$", (REPO_ROOT / "requirements.txt").read_text(), re.M).group(1)
    dockerfile = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.M))
    assert args["SPARK_VERSION"] == pyspark_pin
    assert services["spark-master"]["image"] == f"apache/spark:{pyspark_pin}"
    assert services["artemis"]["image"] == f"apache/activemq-artemis:{ARTEMIS_VERSION}"
    pom = (REPO_ROOT / "services" / "maven" / "spark-kafka.pom.xml").read_text()
    for artifact, arg in (("kafka-clients", "KAFKA_CLIENTS_VERSION"), ("commons-pool2", "COMMONS_POOL2_VERSION")):
        pinned = re.search(rf"<artifactId>{artifact}</artifactId>\s*<version>([^<]+)</version>", pom).group(1)
        assert args[arg] == pinned, f"Dockerfile {arg}={args[arg]} but the pom pins {artifact} {pinned}"
    assert "-r requirements.txt" in dockerfile or "-r /tmp/requirements.txt" in dockerfile


def _docker_engine() -> str | None:
    """None when a Docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    if info.returncode != 0:
        return f"no Docker engine answers: {(info.stderr.strip().splitlines() or ['docker info failed'])[-1]}"
    return None


def test_docker_compose_config_passes() -> None:
    reason = _docker_engine()
    if reason:
        pytest.skip(reason)
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert done.returncode == 0, done.stderr
