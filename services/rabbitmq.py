"""RabbitMQ (Debian's ``rabbitmq-server``) as a local AMQP 1.0 broker, run as the project's own node.

Not the system service: the node gets its own folder under the run folder (Mnesia data,
logs, ``rabbitmq.conf``, ``enabled_plugins`` with ``rabbitmq_amqp1_0``), its own node
name, its own Erlang cookie (``HOME`` points into that folder), its own distribution port
and a private ``epmd`` on a port of its own, started and stopped with it, so ``make down``
leaves no Erlang process behind and nothing touches ``/var/lib/rabbitmq``. AMQP 1.0 and
0-9-1 share the one listener on ``AMQP_PORT``. Anonymous AMQP 1.0 clients act as the
configured user (``amqp1_0.default_user``); SASL PLAIN with a wrong password is refused.
With ``AMQPS_PORT`` and a PKCS#12 key store (``ARTEMIS_TLS_KEYSTORE``) a TLS listener
serves AMQP 1.0 too (the key store is split into the PEM files RabbitMQ reads).

The broker comes from Debian's packages: :func:`ensure_installed` runs ``apt-get install``
when it is missing (as root), or says which command to run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from services.broker import LocalBroker
from services.process import BackgroundProcess, ServiceError, port_stays_busy
from services.settings import RABBITMQ_VERSION, ServiceSettings

RABBITMQ_LIB = Path("/usr/lib/rabbitmq")
NODE_NAME = "amqp-spark-kafka@localhost"
PACKAGES = ("rabbitmq-server",)


def _server_script() -> Path:
    return RABBITMQ_LIB / "bin" / "rabbitmq-server"


def installed_version() -> str | None:
    """The RabbitMQ version under /usr/lib/rabbitmq, or None when the package is not installed."""
    found = sorted((RABBITMQ_LIB / "lib").glob("rabbitmq_server-*")) if (RABBITMQ_LIB / "lib").is_dir() else []
    if not found or not _server_script().exists():
        return None
    plugin = list((found[-1] / "plugins").glob("rabbitmq_amqp1_0-*"))
    return found[-1].name.split("-", 1)[1] if plugin else None


def ensure_installed() -> str:
    """Install ``rabbitmq-server`` from Debian's packages if needed; return its version."""
    version = installed_version()
    if version is not None:
        return version
    command = ["apt-get", "install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", *PACKAGES]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceError(
            f"RabbitMQ is not installed (no {_server_script()}): install Debian's package as root "
            f"(`{' '.join(command)}`, version {RABBITMQ_VERSION} on bookworm), or choose another BROKER"
        )
    print(f"services: installing RabbitMQ from Debian's packages: {' '.join(command)}", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in (command, None):
        if attempt is None:  # the package lists may be stale or absent: refresh once, then retry
            subprocess.run(["apt-get", "update", "-o", "DPkg::Lock::Timeout=300"], env=env, check=False)
            attempt = command
        proc = subprocess.run(attempt, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith(("Get:", "Setting up", "E:")):
                print("  " + line, file=sys.stderr, flush=True)
        if proc.returncode == 0 and installed_version() is not None:
            return installed_version() or RABBITMQ_VERSION
    raise ServiceError(f"`{' '.join(command)}` failed (exit {proc.returncode}); its output ends:\n{proc.stdout[-2000:]}")


class RabbitMQService(LocalBroker):
    """Configure, start, probe and stop one RabbitMQ node of this project's own."""

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings, "rabbitmq")
        self.epmd = BackgroundProcess("rabbitmq-epmd", settings.run_dir)

    def _tls_lines(self) -> list[str]:
        """``listeners.ssl`` from the PKCS#12 key store, split into the PEM files RabbitMQ reads (with openssl)."""
        s, base = self.settings, self.instance
        if not (s.amqps_port and s.tls_keystore):
            return []
        cert, key = base / "tls-cert.pem", base / "tls-key.pem"
        for out, what in ((cert, ["-nokeys"]), (key, ["-nocerts", "-nodes"])):
            cmd = ["openssl", "pkcs12", "-in", str(s.tls_keystore), "-passin", "env:KEYSTORE_PASSWORD", *what, "-out", str(out)]
            proc = subprocess.run(
                cmd, env={**os.environ, "KEYSTORE_PASSWORD": s.tls_keystore_password}, capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise ServiceError(f"cannot read the TLS key store {s.tls_keystore} (openssl pkcs12): {proc.stderr.strip()}")
        key.chmod(0o600)
        return [
            f"listeners.ssl.default = {s.host}:{s.amqps_port}",
            f"ssl_options.certfile = {cert}",
            f"ssl_options.keyfile = {key}",
            "ssl_options.verify = verify_none",
            "ssl_options.fail_if_no_peer_cert = false",
        ]

    def env(self) -> dict[str, str]:
        """The environment that points rabbitmq-server and rabbitmqctl at this node and nothing else."""
        s, base = self.settings, self.instance
        return {
            "HOME": str(base / "home"),  # the Erlang cookie lives in $HOME/.erlang.cookie
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),  # not /etc/rabbitmq's
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(base / "plugins-expand"),
            "RABBITMQ_NODENAME": NODE_NAME,
            "RABBITMQ_DIST_PORT": str(s.rabbitmq_dist_port),
            "ERL_EPMD_PORT": str(s.rabbitmq_epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _configure(self) -> None:
        s, base = self.settings, self.instance
        for sub in ("home", "mnesia", "log", "plugins-expand"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        cookie = base / "home" / ".erlang.cookie"
        if not cookie.is_file():
            cookie.write_text(secrets.token_hex(20))
            cookie.chmod(0o400)
        (base / "rabbitmq-env.conf").write_text("# empty: this node is configured by environment only\n")
        (base / "enabled_plugins").write_text("[rabbitmq_amqp1_0].\n")
        (base / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = {s.host}:{s.amqp_port}",
                    f"default_user = {s.artemis_user}",
                    f"default_pass = {s.artemis_password}",
                    "loopback_users = none",
                    # AMQP 1.0 clients without SASL (or with SASL ANONYMOUS) act as this user.
                    f"amqp1_0.default_user = {s.artemis_user}",
                    "amqp1_0.default_vhost = /",
                    "log.console = false",
                    "log.file.level = info",
                    "disk_free_limit.absolute = 50MB",
                    *self._tls_lines(),
                    "",
                ]
            )
        )

    def start(self) -> None:
        """Start epmd and the node in the background (installing RabbitMQ if needed); returns at once."""
        if self.process.pid is not None:
            return
        s = self.settings
        ensure_installed()
        for port, what in ((s.amqp_port, "AMQP_PORT"), (s.rabbitmq_dist_port, "RABBITMQ_DIST_PORT")):
            if port_stays_busy(s.host, port):
                raise ServiceError(
                    f"port {port} on {s.host} is already in use by another process (the system's rabbitmq-server "
                    f"service? `service rabbitmq-server stop`): stop it, or choose another with {what}=..."
                )
        self._configure()
        env = self.env()
        if self.epmd.pid is None:
            if port_stays_busy("127.0.0.1", s.rabbitmq_epmd_port, grace=1.0):
                raise ServiceError(
                    f"port {s.rabbitmq_epmd_port} (this node's private epmd) is in use: choose another with RABBITMQ_EPMD_PORT=..."
                )
            epmd = shutil.which("epmd") or "/usr/bin/epmd"
            self.epmd.start([*s.launcher(), epmd, "-port", str(s.rabbitmq_epmd_port), "-address", "127.0.0.1"], env=env)
        self.process.start([*s.launcher(), str(_server_script())], env=env, cwd=self.instance)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl`` against this node; returns its output, raises :class:`ServiceError` on failure."""
        cmd = [*self.settings.launcher(), str(RABBITMQ_LIB / "bin" / "rabbitmqctl"), "--node", NODE_NAME, *args]
        proc = subprocess.run(cmd, env={**os.environ, **self.env()}, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise ServiceError(
                f"rabbitmqctl {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc.stdout

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self.epmd.stop(10.0)

    def kill(self) -> None:
        """SIGKILL the node as a crash would; its epmd stays, as the machine's would."""
        super().kill()
