"""The demo's one settings object: names, sizes, ports and where its state goes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from services.topology import Fanout, fanout_addresses

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DemoSettings:
    """Everything a demo run needs to know.

    ``amqp_url``/``kafka_bootstrap`` set: use those running services; both None: start
    the local services (:class:`services.LocalServices`) and stop them at the end, unless
    they were already running. The broker address ``temperature_address`` is made a
    MULTICAST address with one durable queue for the Spark job and one for the bridge, so
    each gets every reading (an anycast queue would split them between the two).
    """

    amqp_url: str | None = None
    kafka_bootstrap: str | None = None
    temperature_address: str = "temperature"
    max_address: str = "max"
    temperature_topic: str = "temperature"
    max_topic: str = "max"
    devices: int = 20
    rate: float = 100.0
    seed: int = 7
    spike_fraction: float = 0.002
    duration: float | None = None
    window_s: int = 5
    watermark_s: int = 10
    drain_timeout: float = 60.0  # seconds without the job progressing before the drain gives up
    job_start_timeout: float = 300.0  # seconds from the job's start to its first micro-batch (Spark starts slowly when busy)
    bridge_http_port: int = int(os.environ.get("BRIDGE_HTTP_PORT", "8080"))
    state_dir: Path = REPO_ROOT / ".run" / "demo"
    broker: str = field(default_factory=lambda: (os.environ.get("BROKER") or "artemis").strip().lower())

    @property
    def fanout(self) -> Fanout:
        """The broker's fan-out of ``temperature_address`` to the Spark job and the bridge (see services.topology)."""
        return fanout_addresses(self.broker, self.temperature_address, ["spark", "bridge"])

    @property
    def publish_address(self) -> str:
        """Where the simulator sends: the fan-out's entry on this broker (``temperature_address`` on Artemis)."""
        return self.fanout.publish

    @property
    def spark_queue(self) -> str:
        """The queue the Spark job reads (on Artemis the fully qualified ``address::address.spark``)."""
        return self.fanout.sources["spark"]

    @property
    def bridge_queue(self) -> str:
        """The queue the bridge forwards to Kafka."""
        return self.fanout.sources["bridge"]

    @property
    def accepted_log(self) -> Path:
        """Every reading the broker accepted, one JSON body per line (written by the simulator)."""
        return self.state_dir / "accepted.jsonl"

    @property
    def amqp_results(self) -> Path:
        """Every result the receiver got from AMQP ``max_address``, one JSON body per line."""
        return self.state_dir / "results-amqp.jsonl"

    def log_file(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"
