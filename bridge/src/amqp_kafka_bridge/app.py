"""The bridge service: one proton reactor thread, the Kafka threads, and the HTTP endpoint, started and drained together."""

from __future__ import annotations

import logging
import threading

from proton.reactor import Container

from amqp_kafka_bridge.core import BridgeCore
from amqp_kafka_bridge.endpoint import BridgeHandler, Front, ServerFront
from amqp_kafka_bridge.forwarder import Forwarder
from amqp_kafka_bridge.hot_path import install
from amqp_kafka_bridge.http import HttpEndpoint
from amqp_kafka_bridge.metrics import BridgeMetrics
from amqp_kafka_bridge.reactor_events import ReactorEvents
from amqp_kafka_bridge.reactor_lock import ParkingIOHandler
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
        self.front: Front = ServerFront(self.core, settings) if settings.mode == "server" else Forwarder(self.core, settings)
        self.handler = BridgeHandler(self.core, self.front, settings.drain_timeout_s)
        # proton's IO handler, waiting in select without the reactor lock (amqp_kafka_bridge.reactor_lock)
        io = ParkingIOHandler(self.core.reactor_lock)
        self.container = Container(self.handler, global_handler=io)
        self.container.container_id = f"bridge-{settings.mode}"
        # The bridged links' delivery and flow events skip proton's Python dispatch (amqp_kafka_bridge.hot_path).
        self.hot = install(
            self.container, self.core.routes, on_error=self.metrics.kafka_errors.labels("internal").inc, serve=self.core.serve
        )
        self.hot.on_idle.append(self.core.on_burst_end)
        # ... and so do the reactor's own IO events (amqp_kafka_bridge.reactor_events)
        self.reactor_events = ReactorEvents(self.container, io)
        self.hot.fast.update(self.reactor_events.table)
        self.http = HttpEndpoint(settings.http_host, settings.http_port, self.metrics.render, self.healthy, self.ready)
        self._thread = threading.Thread(target=self._run, name="bridge-reactor", daemon=True)
        self._stopped = threading.Event()
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.core.reactor_lock.run(self.container.run)
        except BaseException as exc:  # noqa: BLE001 - recorded for healthz and re-raised by wait()
            self.error = exc
            log.exception("reactor failed")
        finally:
            self.handler.started.set()
            self._stopped.set()

    def start(self, timeout: float = 30.0) -> Bridge:
        log.info("bridge starting", extra={"settings": self.settings.redacted()})
        self.core.start()
        self.http.start()
        self._thread.start()
        if not self.handler.started.wait(timeout) or self.error is not None:
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
        """Serving: reactor up, front ready (in forwarder mode: the broker connection is open), not draining,
        and Kafka answers a metadata request."""
        return (
            self.healthy()
            and self.handler.started.is_set()
            and self.front.ready
            and not self.core.draining
            and self.core.producer.reachable(0.5)
        )

    def stop(self, timeout: float | None = None) -> None:
        """Drain and stop (idempotent). Blocks until done or ``drain_timeout_s`` + a grace period."""
        if self._thread.is_alive():
            self.handler.request_drain()
            self._thread.join(timeout if timeout is not None else self.settings.drain_timeout_s + 10)
        unflushed = self.core.shutdown(flush_timeout=5.0)
        self.http.stop()
        log.info("bridge stopped", extra={"unflushed": unflushed})

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the reactor ends; True if it did."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
