"""The bridge service: one proton reactor thread, the Kafka threads, and the HTTP endpoint, started and drained together."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from proton.reactor import ApplicationEvent, Container

from amqp_kafka_bridge.endpoint import BridgeCore, BridgeHandler, server_attach
from amqp_kafka_bridge.http import HttpEndpoint
from amqp_kafka_bridge.metrics import BridgeMetrics
from amqp_kafka_bridge.settings import BridgeSettings

log = logging.getLogger("bridge")


class Bridge:
    """A running bridge (server or forwarder mode, per ``settings.mode``).

    ``start()`` returns once the listener (or the broker connection attempt) and HTTP are up;
    ``stop()`` drains: no new links or credit, waits up to ``drain_timeout_s`` for in-flight
    deliveries to settle (Kafka acks in, peer outcomes out), commits what was accepted,
    flushes the producer and closes everything.
    """

    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        self.metrics = BridgeMetrics()
        self.core = BridgeCore(settings, self.metrics)
        attach = server_attach if settings.mode == "server" else None
        self.handler = BridgeHandler(self.core, attach, self._on_start)
        self.handler.on_bridge_shutdown = self._on_shutdown  # type: ignore[attr-defined]
        self.container = Container(self.handler)
        self.container.container_id = f"bridge-{settings.mode}"
        self.http = HttpEndpoint(settings.http_host, settings.http_port, self.metrics.render, self.healthy, self.ready)
        self._thread = threading.Thread(target=self._run, name="bridge-reactor", daemon=True)
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._acceptor: Any = None
        self._forwarder: Any = None
        self._cyrus: Any = None
        self.error: BaseException | None = None

    def _on_start(self, event: Any) -> None:
        settings = self.settings
        if settings.mode == "server":
            from amqp_kafka_bridge.auth import listen
            from amqp_kafka_bridge.sasl import cyrus_config

            self._cyrus = cyrus_config(
                settings.sasl_mechanisms, settings.sasl_db_file, settings.sasl_config_dir, settings.sasl_config_name
            )
            self._acceptor = listen(event.container, settings, self._cyrus)
        else:
            from amqp_kafka_bridge.forwarder import Forwarder

            self._forwarder = Forwarder(self.core, settings)
            self._forwarder.start(event.container)
        self._started.set()

    def _run(self) -> None:
        try:
            self.container.run()
        except BaseException as exc:  # noqa: BLE001 - recorded for healthz and re-raised by wait()
            self.error = exc
            log.exception("reactor failed")
        finally:
            self._started.set()
            self._stopped.set()

    def start(self, timeout: float = 30.0) -> Bridge:
        log.info("bridge starting", extra={"settings": self.settings.redacted()})
        self.core.start()
        self.http.start()
        self._thread.start()
        if not self._started.wait(timeout) or self.error is not None:
            raise RuntimeError(f"bridge did not start: {self.error}")
        log.info(
            "bridge started",
            extra={
                "mode": self.settings.mode,
                "amqp": f"{self.settings.amqp_host}:{self.settings.amqp_port}",
                "http": self.http.port,
            },
        )
        return self

    def healthy(self) -> bool:
        return self._thread.is_alive() and self.error is None

    def ready(self) -> bool:
        """Serving: reactor up, not draining, Kafka answers a metadata request and, in forwarder
        mode, the broker connection is open."""
        if self._forwarder is not None and not self._forwarder.connected:
            return False
        return self.healthy() and self._started.is_set() and not self.core.draining and self.core.producer.reachable(0.5)

    def _on_shutdown(self, event: Any) -> None:
        core = self.core
        core.draining = True
        if self._acceptor is not None:
            self._acceptor.close()
        for bridged in list(core.links):
            if hasattr(bridged, "pump"):
                bridged.pump.demand = 0
        deadline = time.monotonic() + self.settings.drain_timeout_s

        container = self.container

        class Check:
            def on_timer_task(self, _event: Any) -> None:
                if core.in_flight() == 0 or time.monotonic() >= deadline:
                    if core.in_flight():
                        log.warning(
                            "drain timed out; unsettled deliveries left to the peers", extra={"in_flight": core.in_flight()}
                        )
                    for bridged in list(core.links):
                        core.link_closed(bridged.link)
                    container.stop()
                else:
                    container.schedule(0.02, self)

        container.schedule(0, Check())

    def stop(self, timeout: float | None = None) -> None:
        """Drain and stop (idempotent). Blocks until done or ``drain_timeout_s`` + a grace period."""
        if self._thread.is_alive():
            self.core.injector.trigger(ApplicationEvent("bridge_shutdown"))
            self._thread.join(timeout if timeout is not None else self.settings.drain_timeout_s + 10)
        unsent = self.core.producer.flush(5.0)
        self.core.producer.close(1.0)
        for bridged in list(self.core.links):
            bridged.on_closed(force=True)
        self.core.admin.close()
        self.http.stop()
        if self._cyrus is not None:
            self._cyrus.close()
        log.info("bridge stopped", extra={"unflushed": unsent})

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the reactor ends; True if it did."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
