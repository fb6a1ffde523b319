"""What every local AMQP broker shares: its URLs, readiness over the real protocol, stop and kill by pid."""

from __future__ import annotations

from services.probes import amqp_ready
from services.process import BackgroundProcess
from services.settings import ServiceSettings


class LocalBroker:
    """One local broker process named ``name`` with its instance folder under ``run_dir``.

    Subclasses configure and ``start()`` it; readiness is an AMQP open on the broker's port.
    """

    def __init__(self, settings: ServiceSettings, name: str) -> None:
        self.settings = settings
        self.instance = settings.run_dir / name
        self.process = BackgroundProcess(name, settings.run_dir)

    @property
    def url(self) -> str:
        return self.settings.amqp_url

    @property
    def tls_url(self) -> str | None:
        s = self.settings
        return f"amqps://{s.host}:{s.amqps_port}" if s.amqps_port and s.tls_keystore else None

    def wait_ready(self, timeout: float = 90.0) -> None:
        s = self.settings
        self.process.wait_ready(lambda: amqp_ready(s.host, s.amqp_port), timeout, f"AMQP open on {s.amqp_url}")

    def stop(self, timeout: float = 30.0) -> None:
        self.process.stop(timeout)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would."""
        self.process.kill()

    def ready(self) -> bool:
        return self.process.pid is not None and amqp_ready(self.settings.host, self.settings.amqp_port)
