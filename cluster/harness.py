"""The cluster on one machine: hosts, brokers and Spark up, processes started on hosts, all torn down.

    with Cluster(Path("/tmp/cluster")) as cluster:        # hosts, Kafka, Artemis, Spark master + workers
        bridge = cluster.start_child("bridge1", "bridge", [...])   # any command, run on a host
        cluster.network["worker1"].kill()                 # a fault
    # everything stopped, namespaces and bridge removed; also on an exception, Ctrl-C or SIGTERM

See :mod:`cluster` for the picture. Leaving the ``with`` block (or :meth:`Cluster.stop`) stops
the started commands, Spark, the brokers, then kills whatever is left on any host and
removes the namespaces; :func:`cluster.hosts.remove_leftovers` at the start removes what a
crashed earlier run left.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from cluster.brokers import artemis_pair_on, kafka_cluster_on
from cluster.hosts import Network
from cluster.spark import SparkCluster
from demo.children import Child
from services.artemis_ha import ArtemisHaPair
from services.kafka_cluster import KafkaCluster

KAFKA_HOSTS = ("kafka1", "kafka2", "kafka3")
ARTEMIS_LIVE, ARTEMIS_BACKUP = "artemis-live", "artemis-backup"
# The driver runs on the master's host: it holds the durable checkpoint storage's client and the source's log.
DRIVER = "spark-master"
WORKERS = ("worker1", "worker2")
BRIDGES = ("bridge1", "bridge2")
DEVICES, RECEIVER = "devices", "receiver"
HOSTS = (*KAFKA_HOSTS, ARTEMIS_LIVE, ARTEMIS_BACKUP, DRIVER, *WORKERS, *BRIDGES, DEVICES, RECEIVER)


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt (as Ctrl-C does), so ``finally`` blocks clean up."""

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Cluster:
    """Every host, the Kafka nodes, the Artemis broker(s) and the Spark cluster, in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.network = Network(self.root)
        self.kafka: KafkaCluster | None = None
        self.artemis: ArtemisHaPair | None = None
        self.spark: SparkCluster | None = None
        self.children: list[Child] = []

    # --- addresses a client is given -------------------------------------------------
    @property
    def amqp_url(self) -> str:
        """Both Artemis brokers, live first: clients fail over along this list."""
        assert self.artemis is not None
        return self.artemis.url

    @property
    def kafka_bootstrap(self) -> str:
        """Every Kafka node: a client reaches the cluster while any one is up."""
        assert self.kafka is not None
        return self.kafka.bootstrap

    def kafka_host(self, node_id: int) -> str:
        """The host Kafka node ``node_id`` runs on."""
        return KAFKA_HOSTS[node_id - 1]

    def host_address(self, name: str) -> str:
        return self.network[name].address

    # --- lifecycle -------------------------------------------------------------------
    def start(self, timeout: float = 240.0) -> Cluster:
        self.network.up(list(HOSTS))
        self.kafka = kafka_cluster_on([self.network[name] for name in KAFKA_HOSTS]).start()
        self.artemis = artemis_pair_on(self.network[ARTEMIS_LIVE], self.network[ARTEMIS_BACKUP]).start()
        self.spark = SparkCluster(self.network[DRIVER], [self.network[w] for w in WORKERS])
        self.spark.start(timeout)
        self.kafka.wait_ready(timeout)
        self.artemis.wait_ready(timeout)
        return self

    def start_child(
        self,
        host: str,
        name: str,
        cmd: list[str],
        env: dict[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> Child:
        """Run ``cmd`` on ``host`` (its namespaces, working folder = its folder); output to ``<folder>/logs/<name>.log``."""
        h = self.network[host]
        child = Child(
            name,
            [*h.launcher(), *cmd],
            h.folder / "logs" / f"{name}.log",
            env=env or dict(os.environ),
            cwd=h.folder,
            on_line=on_line,
        )
        self.children.append(child)
        return child

    def stop(self) -> None:
        """Stop everything started, in order; then remove the hosts (safe to call twice)."""
        try:
            for child in reversed(self.children):
                child.stop(signal.SIGTERM, timeout=20)
            self.children.clear()
            if self.spark is not None:
                self.spark.stop()
            if self.artemis is not None:
                self.artemis.stop(timeout=20)
            if self.kafka is not None:
                self.kafka.stop(timeout=20)
        finally:
            self.network.destroy()

    def __enter__(self) -> Cluster:
        self._signals = signals_raise()
        self._signals.__enter__()
        try:
            return self.start()
        except BaseException:
            self.stop()
            self._signals.__exit__(*sys.exc_info())
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self._signals.__exit__(None, None, None)
