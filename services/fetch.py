"""Fetch the JVM parts (Artemis, Kafka, Spark's Kafka jars; ActiveMQ Classic when chosen) from Maven Central into the project's cache, once.

Each part lands in its own folder under ``<cache>/jvm`` with a ``.complete`` stamp that
records what was fetched; a warm cache is recognised from the stamps alone, so a second
``make setup`` runs no Maven and touches no registry. Maven runs with
``--strict-checksums``: a download whose checksum does not match fails the fetch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from services.settings import ACTIVEMQ_VERSION, ARTEMIS_VERSION, KAFKA_VERSION, PROJECT_ROOT, ServiceSettings

POM_DIR = PROJECT_ROOT / "services" / "maven"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


class FetchError(RuntimeError):
    """A JVM part could not be fetched; the message says what to do."""


@dataclass(frozen=True)
class JvmParts:
    """Paths of the fetched JVM parts."""

    artemis_home: Path
    kafka_libs: Path
    spark_kafka_jars: tuple[Path, ...]
    activemq_home: Path | None = None  # only when BROKER=activemq


def spark_version() -> str:
    """The version of the installed pyspark: the Kafka connector jars must match it."""
    import pyspark

    return pyspark.__version__


def _stamp_ok(folder: Path, key: str) -> bool:
    stamp = folder / ".complete"
    return stamp.is_file() and stamp.read_text().strip() == key


def _write_stamp(folder: Path, key: str) -> None:
    (folder / ".complete").write_text(key + "\n")


def _mvn(settings: ServiceSettings, *args: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError(
            "Maven (`mvn`) is not on PATH and the JVM cache is empty: install Maven "
            "(e.g. `apt-get install maven`) or copy a filled .cache/ from another checkout"
        )
    cmd = [
        mvn,
        "-B",
        "--strict-checksums",
        f"-Dmaven.repo.local={settings.cache_dir / 'm2'}",
        *args,
    ]
    print("services: $ " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout.splitlines():
        # Visible progress without Maven's banner noise.
        if "Downloaded from" in line or line.startswith("[ERROR]") or "BUILD" in line:
            print("  " + line, file=sys.stderr, flush=True)
    if proc.returncode != 0:
        raise FetchError(
            f"Maven failed (exit {proc.returncode}) fetching {args[-1]!r}: is Maven Central "
            "reachable? Without a registry, copy a filled .cache/ from another checkout. "
            "Last output:\n" + "\n".join(proc.stdout.splitlines()[-15:])
        )


def _copy_dependencies(settings: ServiceSettings, pom: Path, out: Path, **props: str) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _mvn(
        settings,
        "-f",
        str(pom),
        *(f"-D{k}={v}" for k, v in props.items()),
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out}",
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
    )


def _fetch_distribution(settings: ServiceSettings, name: str, title: str, version: str, check: str) -> Path:
    """Download ``org.apache.activemq:apache-<name>:<version>:tar.gz:bin`` and unpack it once."""
    folder = settings.jvm_dir / name
    home = folder / f"apache-{name}-{version}"
    if _stamp_ok(folder, version):
        return home
    print(f"services: fetching {title} {version}", file=sys.stderr, flush=True)
    download = folder / "download"
    if folder.exists():
        shutil.rmtree(folder)
    download.mkdir(parents=True)
    _mvn(
        settings,
        f"-Dartifact=org.apache.activemq:apache-{name}:{version}:tar.gz:bin",
        f"-DoutputDirectory={download}",
        f"{DEPENDENCY_PLUGIN}:copy",
    )
    (archive,) = download.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="tar")
    archive.unlink()
    if not (home / check).is_file():
        raise FetchError(f"the {title} archive did not contain {home / check}")
    _write_stamp(folder, version)
    return home


def fetch_artemis(settings: ServiceSettings) -> Path:
    return _fetch_distribution(settings, "artemis", "ActiveMQ Artemis", ARTEMIS_VERSION, "bin/artemis")


def fetch_activemq(settings: ServiceSettings) -> Path:
    """ActiveMQ Classic, fetched only when it is the chosen broker (``BROKER=activemq``)."""
    return _fetch_distribution(settings, "activemq", "ActiveMQ Classic", ACTIVEMQ_VERSION, "bin/activemq.jar")


def fetch_kafka(settings: ServiceSettings) -> Path:
    folder = settings.jvm_dir / "kafka"
    libs = folder / "libs"
    if _stamp_ok(folder, KAFKA_VERSION):
        return libs
    print(f"services: fetching Apache Kafka {KAFKA_VERSION}", file=sys.stderr, flush=True)
    _copy_dependencies(settings, POM_DIR / "kafka-server.pom.xml", libs, **{"kafka.version": KAFKA_VERSION})
    _write_stamp(folder, KAFKA_VERSION)
    return libs


def fetch_spark_kafka(settings: ServiceSettings) -> tuple[Path, ...]:
    version = spark_version()
    folder = settings.jvm_dir / "spark-kafka"
    jars = folder / "jars"
    if not _stamp_ok(folder, version):
        print(f"services: fetching Spark {version} Kafka connector", file=sys.stderr, flush=True)
        _copy_dependencies(settings, POM_DIR / "spark-kafka.pom.xml", jars, **{"spark.version": version})
        _write_stamp(folder, version)
    return tuple(sorted(jars.glob("*.jar")))


def fetch_all(settings: ServiceSettings) -> JvmParts:
    """Fetch whatever is not in the cache yet; fast and offline when it all is."""
    return JvmParts(
        artemis_home=fetch_artemis(settings),
        kafka_libs=fetch_kafka(settings),
        spark_kafka_jars=fetch_spark_kafka(settings),
        activemq_home=fetch_activemq(settings) if settings.broker == "activemq" else None,
    )


def cached_parts(settings: ServiceSettings) -> JvmParts:
    """The parts as already fetched; raises :class:`FetchError` naming what is missing."""
    wanted = [("artemis", ARTEMIS_VERSION), ("kafka", KAFKA_VERSION), ("spark-kafka", spark_version())]
    if settings.broker == "activemq":
        wanted.append(("activemq", ACTIVEMQ_VERSION))
    missing = [name for name, key in wanted if not _stamp_ok(settings.jvm_dir / name, key)]
    if missing:
        raise FetchError(f"JVM parts not fetched yet: {', '.join(missing)}; run `make setup` first")
    return fetch_all(settings)
