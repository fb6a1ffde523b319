"""ActiveMQ Artemis as a local AMQP 1.0 broker: one instance folder, one acceptor on loopback.

The instance is created once with Artemis's own ``artemis create`` and then only its
acceptor and address defaults are rewritten, so the persistent journal survives restarts
(a killed broker comes back with every message it had accepted). Addresses are
auto-created as ANYCAST queues: a message sent before any receiver attached waits for
one, the way devices and a later-started Spark job expect. Anonymous clients are allowed,
the configured user/password works over SASL PLAIN, and a wrong password is refused.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from services.broker import LocalBroker
from services.process import ServiceError, java_executable, port_stays_busy
from services.settings import ServiceSettings

_ACCEPTORS = re.compile(r"<acceptors>.*?</acceptors>", re.DOTALL)
_CATCH_ALL = '<address-setting match="#">'
# Addresses under "noauto." are never auto-created: sending there gets amqp:not-found,
# which the tests of unknown-address handling rely on.
_NO_AUTO_CREATE = (
    '<address-setting match="noauto.#"><auto-create-queues>false</auto-create-queues>'
    "<auto-create-addresses>false</auto-create-addresses></address-setting>"
)
_ANYCAST = (
    "<default-address-routing-type>ANYCAST</default-address-routing-type>"
    "<default-queue-routing-type>ANYCAST</default-queue-routing-type>"
)


class ArtemisService(LocalBroker):
    """Create, start, probe and stop one local Artemis broker."""

    def __init__(self, settings: ServiceSettings, artemis_home: Path) -> None:
        super().__init__(settings, "artemis")
        self.home = artemis_home

    def _create_instance(self) -> None:
        s = self.settings
        cmd = [
            str(self.home / "bin" / "artemis"), "create", str(self.instance),
            "--silent", "--force", "--no-web", "--nio", "--no-autotune",
            "--user", s.artemis_user, "--password", s.artemis_password,
            "--allow-anonymous", "--host", s.host, "--java-memory", s.jvm_heap.upper(),
            "--no-hornetq-acceptor", "--no-mqtt-acceptor", "--no-stomp-acceptor",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env={"JAVA_HOME": _java_home()})
        if proc.returncode != 0:
            raise ServiceError(f"`artemis create` failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")

    def _configure(self) -> None:
        s = self.settings
        broker_xml = self.instance / "etc" / "broker.xml"
        text = broker_xml.read_text()
        acceptor = (
            f'<acceptors><acceptor name="amqp">tcp://{s.host}:{s.amqp_port}?protocols=AMQP,CORE;'
            "tcpSendBufferSize=1048576;tcpReceiveBufferSize=1048576;useEpoll=true;"
            "amqpCredits=1000;amqpLowCredits=300;amqpMinLargeMessageSize=102400;"
            "amqpDuplicateDetection=true</acceptor>"
        )
        if s.amqps_port and s.tls_keystore:
            acceptor += (
                f'<acceptor name="amqps">tcp://{s.host}:{s.amqps_port}?protocols=AMQP;sslEnabled=true;'
                f"keyStorePath={s.tls_keystore};keyStoreType=PKCS12;keyStorePassword={s.tls_keystore_password};"
                "amqpCredits=1000;amqpLowCredits=300</acceptor>"
            )
        acceptor += "</acceptors>"
        text = _ACCEPTORS.sub(acceptor, text, count=1)
        if _ANYCAST not in text:
            text = text.replace(_CATCH_ALL, _CATCH_ALL + _ANYCAST, 1)
        if _NO_AUTO_CREATE not in text:
            text = text.replace(_CATCH_ALL, _NO_AUTO_CREATE + _CATCH_ALL, 1)
        broker_xml.write_text(text)
        # `artemis create` fixes the initial heap at 512M whatever the maximum: a smaller
        # --java-memory would make the JVM refuse to start.
        profile = self.instance / "etc" / "artemis.profile"
        profile.write_text(re.sub(r"-Xms\d+[MmGg]", "-Xms128M", profile.read_text(), count=1))
        # Anonymous clients get the guest role, but wrong credentials must fail rather than
        # silently fall through to guest: that is what a user/password mode means.
        login = self.instance / "etc" / "login.config"
        jaas = login.read_text()
        if "credentialsInvalidate" not in jaas:
            jaas = jaas.replace(
                "GuestLoginModule sufficient", "GuestLoginModule sufficient\n       credentialsInvalidate=true", 1
            )
            login.write_text(jaas)

    def start(self) -> None:
        """Start the broker in the background (creating its instance on first use); returns at once."""
        if self.process.pid is not None:
            return
        if port_stays_busy(self.settings.host, self.settings.amqp_port):
            raise ServiceError(
                f"port {self.settings.amqp_port} on {self.settings.host} is already in use by another process: "
                "stop it, or choose another with AMQP_PORT=..."
            )
        if not (self.instance / "etc" / "broker.xml").is_file():
            self._create_instance()
        self._configure()
        self.process.start(
            [*self.settings.launcher(), str(self.instance / "bin" / "artemis"), "run"],
            env={"JAVA_HOME": _java_home()},
        )


def _java_home() -> str:
    return str(Path(java_executable()).resolve().parent.parent)
