"""Where the local services live and which ports they use; every value can be set by environment."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ARTEMIS_VERSION = "2.40.0"
KAFKA_VERSION = "4.4.0"
# The newest ActiveMQ Classic whose bin tar.gz Maven Central serves here (5.18.4-5.18.7, 6.1.7, 6.2.0 did not).
ACTIVEMQ_VERSION = "5.18.3"
# Debian bookworm's rabbitmq-server; its AMQP 1.0 support is the rabbitmq_amqp1_0 plugin.
RABBITMQ_VERSION = "3.10.8"
BROKERS = ("artemis", "activemq", "rabbitmq")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"environment variable {name}={raw!r} is not a port number") from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServiceSettings:
    """Ports, folders and credentials of one local AMQP broker (Artemis by default) + Kafka pair.

    Environment variables (defaults in brackets): ``SERVICES_HOST`` [127.0.0.1],
    ``AMQP_PORT`` [5672], ``KAFKA_PORT`` [9092], ``KAFKA_CONTROLLER_PORT`` [9093],
    ``PROJECT_CACHE`` [.cache, the JVM parts], ``SERVICES_RUN_DIR`` [.run, instances,
    logs, pids], ``ARTEMIS_USER`` / ``ARTEMIS_PASSWORD`` [admin/admin]; for an extra TLS
    acceptor: ``AMQPS_PORT``, ``ARTEMIS_TLS_KEYSTORE`` (PKCS#12), ``ARTEMIS_TLS_KEYSTORE_PASSWORD``.
    ``BROKER`` [artemis]: which AMQP 1.0 broker listens on ``AMQP_PORT``: ``artemis``,
    ``activemq`` (ActiveMQ Classic) or ``rabbitmq``; the user/password above work on each.
    RabbitMQ also uses ``RABBITMQ_DIST_PORT`` [25672] (Erlang distribution, for its CLI) and
    ``RABBITMQ_EPMD_PORT`` [4370] (a private Erlang port mapper, never the system's 4369).
    ``SERVICES_NETNS``: run the brokers inside this Linux network namespace (``ip netns exec``;
    ``host`` is then an address of that namespace), e.g. to cut the network under them in tests.
    ``launch_prefix`` (no variable; for harnesses): the whole command prefix that starts a
    broker where it should run, e.g. a host's network and mount namespaces; it wins over ``netns``.
    """

    host: str = "127.0.0.1"
    amqp_port: int = 5672
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    cache_dir: Path = PROJECT_ROOT / ".cache"
    run_dir: Path = PROJECT_ROOT / ".run"
    artemis_user: str = "admin"
    artemis_password: str = "admin"
    jvm_heap: str = "512m"
    # Optional TLS acceptor (amqps): a PKCS#12 key store holding the broker's key and certificate.
    amqps_port: int | None = None
    tls_keystore: Path | None = None
    tls_keystore_password: str = field(default="", repr=False)
    netns: str | None = None
    broker: str = "artemis"
    rabbitmq_dist_port: int = 25672
    rabbitmq_epmd_port: int = 4370
    launch_prefix: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.broker not in BROKERS:
            raise ValueError(f"broker {self.broker!r} is not a known broker: choose one of {', '.join(BROKERS)}")

    def launcher(self) -> list[str]:
        """The command prefix that starts a broker process where it should run (its network namespace)."""
        if self.launch_prefix:
            return list(self.launch_prefix)
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    @classmethod
    def from_env(cls) -> ServiceSettings:
        env = os.environ
        broker = (env.get("BROKER") or cls.broker).strip().lower()
        if broker not in BROKERS:
            raise SystemExit(f"environment variable BROKER={broker!r} is not a known broker: choose one of {', '.join(BROKERS)}")
        return cls(
            host=env.get("SERVICES_HOST", cls.host),
            amqp_port=_env_int("AMQP_PORT", cls.amqp_port),
            kafka_port=_env_int("KAFKA_PORT", cls.kafka_port),
            kafka_controller_port=_env_int("KAFKA_CONTROLLER_PORT", cls.kafka_controller_port),
            cache_dir=Path(env.get("PROJECT_CACHE", str(cls.cache_dir))).resolve(),
            run_dir=Path(env.get("SERVICES_RUN_DIR", str(cls.run_dir))).resolve(),
            artemis_user=env.get("ARTEMIS_USER", cls.artemis_user),
            artemis_password=env.get("ARTEMIS_PASSWORD", cls.artemis_password),
            amqps_port=_env_int("AMQPS_PORT", 0) or None,
            tls_keystore=Path(env["ARTEMIS_TLS_KEYSTORE"]).resolve() if env.get("ARTEMIS_TLS_KEYSTORE") else None,
            tls_keystore_password=env.get("ARTEMIS_TLS_KEYSTORE_PASSWORD", ""),
            netns=env.get("SERVICES_NETNS") or None,
            broker=broker,
            rabbitmq_dist_port=_env_int("RABBITMQ_DIST_PORT", cls.rabbitmq_dist_port),
            rabbitmq_epmd_port=_env_int("RABBITMQ_EPMD_PORT", cls.rabbitmq_epmd_port),
        )

    def with_free_ports(self, run_dir: Path) -> ServiceSettings:
        """The same settings on OS-chosen free ports in a private run folder (for tests)."""
        return replace(
            self,
            amqp_port=free_port(self.host),
            kafka_port=free_port(self.host),
            kafka_controller_port=free_port(self.host),
            rabbitmq_dist_port=free_port(self.host),
            rabbitmq_epmd_port=free_port(self.host),
            run_dir=run_dir,
        )

    @property
    def jvm_dir(self) -> Path:
        return self.cache_dir / "jvm"

    @property
    def amqp_url(self) -> str:
        return f"amqp://{self.host}:{self.amqp_port}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"
