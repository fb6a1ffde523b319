"""Apache Kafka as a local single-node KRaft cluster (combined broker and controller).

The storage folder is formatted on first start; later starts reuse it, so a killed broker
comes back with its topics and committed offsets. The JVM runs straight from the jars in
the cache (``kafka.Kafka``), the same main class the distribution's scripts call.

Optionally (``KafkaSaslSsl``) a second listener requires SASL_SSL: TLS from a PKCS#12 key
store and SCRAM users created by Kafka's own storage tool (``--add-scram``) when the storage
is formatted, as a production cluster with client authentication would be set up.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from services.probes import kafka_ready
from services.process import BackgroundProcess, ServiceError, java_executable, port_stays_busy
from services.settings import ServiceSettings

_LOG4J = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def new_kafka_uuid() -> str:
    """A random id in Kafka's own form (URL-safe base64 of 16 bytes), for cluster and directory ids.

    Kafka's own generator never returns an id starting with "-" (a command line would read
    it as an option); neither does this one.
    """
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


def write_log4j(home: Path) -> Path:
    """A log4j2 configuration in ``home`` sending the node's log to ``home/server.log`` (warnings only from Kafka)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "log4j2.properties"
    path.write_text(_LOG4J.format(log=home / "server.log"))
    return path


def kafka_java(libs: Path, heap: str, home: Path, main: str, *args: str) -> list[str]:
    """The command that runs Kafka's ``main`` class from the cached jars with a ``heap``-bounded JVM."""
    return [
        java_executable(),
        f"-Xmx{heap}", "-Xms128m", "-XX:+UseG1GC",
        f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
        "-cp", f"{libs}/*", main, *args,
    ]  # fmt: skip


def format_storage(libs: Path, heap: str, home: Path, config: Path, cluster_id: str, *args: str) -> None:
    """Run Kafka's storage tool: format the log dirs of ``config`` for ``cluster_id`` (``args``: extra tool options)."""
    proc = subprocess.run(
        # "--cluster-id=ID": spelled as one argument, so that no id can be read as an option
        kafka_java(libs, heap, home, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(config), *args),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ServiceError(
            f"formatting Kafka storage failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )


@dataclass(frozen=True)
class KafkaSaslSsl:
    """An extra SASL_SSL listener on ``port``: ``keystore`` (PKCS#12) for TLS, ``users`` (name -> password) for SCRAM."""

    port: int
    keystore: Path
    keystore_password: str = field(repr=False)
    users: dict[str, str] = field(default_factory=dict, repr=False)
    mechanism: str = "SCRAM-SHA-256"


class KafkaService:
    """Configure, format, start, probe and stop one local Kafka node."""

    def __init__(self, settings: ServiceSettings, kafka_libs: Path, sasl_ssl: KafkaSaslSsl | None = None) -> None:
        self.settings = settings
        self.sasl_ssl = sasl_ssl
        self.libs = kafka_libs
        self.home = settings.run_dir / "kafka"
        self.data = self.home / "data"
        self.process = BackgroundProcess("kafka", settings.run_dir)

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def sasl_ssl_bootstrap(self) -> str | None:
        return f"{self.settings.host}:{self.sasl_ssl.port}" if self.sasl_ssl else None

    def _java(self, main: str, *args: str) -> list[str]:
        return kafka_java(self.libs, self.settings.jvm_heap, self.home, main, *args)

    def _write_config(self) -> Path:
        s = self.settings
        write_log4j(self.home)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{s.host}:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{s.host}:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.flush.interval.messages": "9223372036854775807",
        }
        if self.sasl_ssl is not None:
            t = self.sasl_ssl
            props["listeners"] += f",SASL_SSL://{s.host}:{t.port}"
            props["advertised.listeners"] += f",SASL_SSL://{s.host}:{t.port}"
            props["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
            props["sasl.enabled.mechanisms"] = t.mechanism
            module = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            props[f"listener.name.sasl_ssl.{t.mechanism.lower()}.sasl.jaas.config"] = module
            props["ssl.keystore.type"] = "PKCS12"
            props["ssl.keystore.location"] = str(t.keystore)
            props["ssl.keystore.password"] = t.keystore_password
        config = self.home / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return config

    def _format_storage(self, config: Path) -> None:
        if (self.data / "meta.properties").is_file():
            return
        scram = [
            arg
            for name, password in (self.sasl_ssl.users.items() if self.sasl_ssl else ())
            for arg in ("--add-scram", f"{self.sasl_ssl.mechanism}=[name={name},password={password}]")  # type: ignore[union-attr]
        ]
        format_storage(self.libs, self.settings.jvm_heap, self.home, config, new_kafka_uuid(), *scram)

    def start(self) -> None:
        """Start the node in the background (formatting storage on first use); returns at once."""
        if self.process.pid is not None:
            return
        s = self.settings
        ports = [(s.kafka_port, "KAFKA_PORT"), (s.kafka_controller_port, "KAFKA_CONTROLLER_PORT")]
        if self.sasl_ssl is not None:
            ports.append((self.sasl_ssl.port, "the SASL_SSL port"))
        for port, var in ports:
            if port_stays_busy(s.host, port):
                raise ServiceError(
                    f"port {port} on {s.host} is already in use by another process: stop it, or choose another with {var}=..."
                )
        config = self._write_config()
        self._format_storage(config)
        self.process.start([*self.settings.launcher(), *self._java("kafka.Kafka", str(config))])

    def wait_ready(self, timeout: float = 90.0) -> None:
        self.process.wait_ready(lambda: kafka_ready(self.bootstrap), timeout, f"Kafka metadata from {self.bootstrap}")

    def stop(self, timeout: float = 30.0) -> None:
        self.process.stop(timeout)

    def kill(self) -> None:
        self.process.kill()

    def ready(self) -> bool:
        return self.process.pid is not None and kafka_ready(self.bootstrap)
