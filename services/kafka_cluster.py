"""Apache Kafka as an N-node KRaft cluster of local processes, each node combined broker and controller.

For the cluster harness and the replication tests: every node has its own address, ports,
folder and (optionally) Linux network namespace, as separate hosts would, and the cluster is
configured the way a replicated production cluster is (replication factor 3,
``min.insync.replicas=2``, internal topics replicated alike). The controller quorum is the
dynamic form of Kafka 4 (KIP-853): ``controller.quorum.bootstrap.servers`` on every node and
every node's storage formatted with the same ``--initial-controllers`` list and cluster id.

A node is killed with SIGKILL and restarted on the same folder, so it comes back with its
log and rejoins the in-sync replicas. Limits: a node whose folder is lost cannot be
re-added (that needs ``--no-initial-controllers`` and ``add-controller``); the folders of
all nodes are formatted together, so a half-formatted set is refused rather than guessed
at. Readiness and leader lookups go over the Kafka protocol from the caller's network
namespace, which must reach every node's address.

>>> cluster = KafkaCluster(local_nodes(3, Path("/tmp/k")), fetch_kafka(settings))  # doctest: +SKIP
>>> cluster.start(); cluster.wait_ready(); cluster.bootstrap                         # doctest: +SKIP
'127.0.0.1:41001,127.0.0.1:41002,127.0.0.1:41003'
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from services.kafka import format_storage, kafka_java, new_kafka_uuid, write_log4j
from services.process import BackgroundProcess, ServiceError, port_in_use, port_stays_busy, wait_until
from services.settings import free_port

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

_quiet = logging.getLogger("services.kafka_cluster.client")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


@dataclass(frozen=True)
class KafkaNodeSpec:
    """Where one node lives: its id, listen address and ports, its own folder, its network namespace.

    ``host`` is the address the node binds to; ``advertised_host`` (default ``host``) is the
    one clients and the other nodes are told to use. ``netns`` names a Linux network
    namespace (``ip netns exec``) the node runs in, in which ``host`` must be an address;
    ``launcher`` (a whole command prefix, e.g. a host's network and mount namespaces) wins over it.
    """

    node_id: int
    host: str
    port: int
    controller_port: int
    folder: Path
    netns: str | None = None
    advertised_host: str | None = None
    launcher: tuple[str, ...] = ()

    def command_prefix(self) -> list[str]:
        """What starts the node where it runs: ``launcher``, else ``ip netns exec <netns>``, else nothing."""
        if self.launcher:
            return list(self.launcher)
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    @property
    def address(self) -> str:
        return self.advertised_host or self.host

    @property
    def bootstrap(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def controller_endpoint(self) -> str:
        return f"{self.address}:{self.controller_port}"


def local_nodes(count: int, root: Path, hosts: Sequence[str] | None = None) -> list[KafkaNodeSpec]:
    """``count`` node specs on free ports, node ``i`` (1-based) in ``root/kafka-i`` at ``hosts[i-1]`` (default 127.0.0.1)."""
    hosts = list(hosts) if hosts is not None else ["127.0.0.1"] * count
    if len(hosts) != count:
        raise ValueError(f"{count} nodes need {count} hosts, got {len(hosts)}: {hosts}")
    return [
        KafkaNodeSpec(node_id=i, host=host, port=free_port(host), controller_port=free_port(host), folder=root / f"kafka-{i}")
        for i, host in enumerate(hosts, start=1)
    ]


class KafkaClusterNode:
    """One node's configuration, storage and process; driven by :class:`KafkaCluster`."""

    def __init__(self, spec: KafkaNodeSpec, libs: Path, heap: str) -> None:
        self.spec = spec
        self.libs = libs
        self.heap = heap
        self.data = spec.folder / "data"
        self.config = spec.folder / "server.properties"
        self.process = BackgroundProcess(f"kafka-{spec.node_id}", spec.folder)

    @property
    def formatted(self) -> bool:
        return (self.data / "meta.properties").is_file()

    def write_config(self, peers: Sequence[KafkaNodeSpec], settings: dict[str, str]) -> None:
        s = self.spec
        write_log4j(s.folder)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(s.node_id),
            "controller.quorum.bootstrap.servers": ",".join(p.controller_endpoint for p in peers),
            "listeners": f"PLAINTEXT://{s.host}:{s.port},CONTROLLER://{s.host}:{s.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{s.bootstrap},CONTROLLER://{s.controller_endpoint}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data),
            **settings,
        }
        self.config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def format(self, cluster_id: str, initial_controllers: str) -> None:
        format_storage(
            self.libs, self.heap, self.spec.folder, self.config, cluster_id, "--initial-controllers", initial_controllers
        )

    def start(self) -> None:
        """Launch the node (in its namespace) unless it runs; returns at once."""
        if self.process.pid is not None:
            return
        s = self.spec
        for port in (s.port, s.controller_port):
            if port_stays_busy(s.host, port):
                raise ServiceError(
                    f"port {port} on {s.host} (Kafka node {s.node_id}) is already in use by another process: "
                    "stop it, or give the node another port"
                )
        self.process.start([*s.command_prefix(), *kafka_java(self.libs, self.heap, s.folder, "kafka.Kafka", str(self.config))])


class KafkaCluster:
    """Start, probe, fault and stop an N-node KRaft cluster (N >= 1; the harness uses 3).

    ``start()`` and ``start_node()`` return at once; ``wait_ready()`` is the signal that the
    cluster serves: every node's process is alive and a DescribeCluster answer lists every
    node as a registered broker (which needs an elected controller quorum, since brokers
    register with the active controller). Defaults follow the replicated production setup
    (``replication_factor`` 3 and ``min_insync`` 2 when there are 3 nodes or more).
    """

    def __init__(
        self,
        nodes: Sequence[KafkaNodeSpec],
        kafka_libs: Path,
        *,
        heap: str = "384m",
        num_partitions: int = 3,
        replication_factor: int | None = None,
        min_insync: int | None = None,
        extra_config: dict[str, str] | None = None,
    ) -> None:
        if not nodes:
            raise ValueError("a Kafka cluster needs at least one node")
        ids = [n.node_id for n in nodes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"node ids must be unique, got {ids}")
        self.specs = list(nodes)
        self._client: AdminClient | None = None
        self.nodes = {n.node_id: KafkaClusterNode(n, kafka_libs, heap) for n in nodes}
        rf = replication_factor or min(3, len(nodes))
        isr = min_insync or max(1, rf - 1)
        if not 1 <= isr <= rf <= len(nodes):
            raise ValueError(f"need 1 <= min_insync ({isr}) <= replication_factor ({rf}) <= nodes ({len(nodes)})")
        self.replication_factor = rf
        self.min_insync = isr
        self.settings = {
            "num.partitions": str(num_partitions),
            "default.replication.factor": str(rf),
            "min.insync.replicas": str(isr),
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": str(isr),
            "share.coordinator.state.topic.replication.factor": str(rf),
            "share.coordinator.state.topic.min.isr": str(isr),
            "unclean.leader.election.enable": "false",
            "auto.create.topics.enable": "true",
            "group.initial.rebalance.delay.ms": "0",
            **(extra_config or {}),
        }

    @property
    def bootstrap(self) -> str:
        """Every node's ``host:port``, comma-separated: a client reaches the cluster while any one is up."""
        return ",".join(n.bootstrap for n in self.specs)

    def node(self, node_id: int) -> KafkaClusterNode:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise ValueError(f"no Kafka node {node_id}; the nodes are {sorted(self.nodes)}") from None

    def _format_all(self) -> None:
        formatted = [i for i, n in self.nodes.items() if n.formatted]
        if len(formatted) == len(self.nodes):
            return
        if formatted:
            raise ServiceError(
                f"Kafka nodes {formatted} have formatted storage but nodes "
                f"{sorted(set(self.nodes) - set(formatted))} do not: the quorum was set up without them. "
                "Delete every node's folder to start a new cluster"
            )
        cluster_id = new_kafka_uuid()
        initial = ",".join(f"{s.node_id}@{s.controller_endpoint}:{new_kafka_uuid()}" for s in self.specs)
        # Each format is a JVM of its own: side by side, three take the time of one.
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for done in [pool.submit(node.format, cluster_id, initial) for node in self.nodes.values()]:
                done.result()

    def start(self) -> KafkaCluster:
        """Write every node's configuration, format the storage on first use, launch every node; returns at once."""
        for node in self.nodes.values():
            node.write_config(self.specs, self.settings)
        self._format_all()
        try:
            for node in self.nodes.values():
                node.start()
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, node_id: int) -> None:
        """(Re)start one node on its folder, e.g. after :meth:`kill`; returns at once (then :meth:`wait_registered`)."""
        self.node(node_id).start()

    def kill(self, node_id: int) -> None:
        """SIGKILL one node, as a crash would: no controlled shutdown, leadership moves when its session expires."""
        self.node(node_id).process.kill()

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """Stop one node cleanly (SIGTERM: controlled shutdown hands its leaderships over first)."""
        self.node(node_id).process.stop(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node (SIGTERM to all at once, SIGKILL after ``timeout``); the folders stay for a later :meth:`start`.

        All at once: one node at a time, the last ones would wait for a quorum that has already gone.
        """
        for node in self.nodes.values():
            node.process.signal(signal.SIGTERM)
        for node in self.nodes.values():
            node.process.stop(timeout)

    def running(self) -> list[int]:
        """The ids of the nodes whose process is alive."""
        return [i for i, n in self.nodes.items() if n.process.pid is not None]

    def _admin(self) -> AdminClient:
        """One client for the cluster's lifetime: it must outlive its futures (a dropped client fails them)."""
        if self._client is None:
            from confluent_kafka.admin import AdminClient

            self._client = AdminClient({"bootstrap.servers": self.bootstrap, "logger": _quiet})
        return self._client

    def registered_brokers(self, timeout: float = 5.0) -> set[int]:
        """The broker ids a DescribeCluster answer lists now (empty while no node answers)."""
        try:
            result = self._admin().describe_cluster(request_timeout=timeout).result(timeout + 1)
        except Exception:  # noqa: BLE001 - KafkaException while nodes start or fail; the callers have deadlines
            return set()
        return {node.id for node in result.nodes}

    def _wait(self, what: str, timeout: float, check: Callable[[], object], alive: Iterable[int] = ()) -> object:
        """Poll ``check`` until truthy; fail at the deadline, or at once if a node of ``alive`` exits."""
        watched = [node.process for node_id, node in self.nodes.items() if node_id in set(alive)]
        return wait_until(check, f"{what} in the Kafka cluster", timeout, watched)

    def wait_registered(self, node_ids: Iterable[int] | None = None, timeout: float = 120.0) -> None:
        """Wait until each of ``node_ids`` (default: all) is alive and listed as a registered broker."""
        wanted = set(self.nodes if node_ids is None else node_ids)
        self._wait(f"registration of brokers {sorted(wanted)}", timeout, lambda: wanted <= self.registered_brokers(), wanted)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until all N brokers are registered (a DescribeCluster answer lists them), every controller
        listens, and the consumer offsets topic exists with every replica in sync.

        Registration goes through the active controller, so it also means the quorum elected one.
        """
        deadline = time.monotonic() + timeout
        self.wait_registered(None, timeout)
        self._wait(
            "every controller listening",
            max(1.0, deadline - time.monotonic()),
            lambda: all(port_in_use(s.address, s.controller_port) for s in self.specs),
            self.nodes,
        )
        self._wait("the consumer offsets topic on every node", max(1.0, deadline - time.monotonic()), self._offsets_topic_ready)

    def _offsets_topic_ready(self) -> bool:
        """Ask a group coordinator (which creates ``__consumer_offsets``), then check that every replica is in sync.

        Kafka creates the topic on the first consumer group's request, and only while as many
        brokers are alive as its replication factor: made here, consumer groups keep working
        when a node is killed later, even groups that appear only after the kill.
        """
        from confluent_kafka import Consumer, TopicPartition

        # A plain consumer's committed-offsets lookup goes through the group coordinator. (Not the
        # AdminClient's group calls: confluent-kafka 2.16 crashed the process on their answers here.)
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "services-kafka-cluster-ready", "logger": _quiet})
        try:
            consumer.committed([TopicPartition("services-kafka-cluster-ready", 0)], timeout=10)
        except Exception:  # noqa: BLE001 - NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE while the topic is being created
            return False
        finally:
            consumer.close()
        parts = self.partitions("__consumer_offsets")
        return bool(parts) and all(leader >= 0 and len(isr) == len(replicas) for leader, replicas, isr in parts.values())

    def partitions(self, topic: str, timeout: float = 10.0) -> dict[int, tuple[int, tuple[int, ...], tuple[int, ...]]]:
        """``{partition: (leader, replicas, in-sync replicas)}`` from the cluster's metadata now (empty if unknown).

        The leader is -1 while a partition has none (its leader died and no in-sync replica took over yet).
        """
        try:
            metadata = self._admin().list_topics(topic, timeout=timeout).topics.get(topic)
        except Exception:  # noqa: BLE001 - no node answered; the callers have deadlines
            return {}
        if metadata is None or metadata.error is not None:
            return {}
        return {p.id: (p.leader, tuple(p.replicas), tuple(p.isrs)) for p in metadata.partitions.values()}

    def partition_leaders(self, topic: str, timeout: float = 10.0) -> dict[int, int]:
        """``{partition: leader node id}`` of ``topic`` (-1 for a partition without a leader)."""
        return {p: leader for p, (leader, _, _) in self.partitions(topic, timeout).items()}

    def wait_leaders(self, topic: str, excluding: Iterable[int] = (), timeout: float = 60.0) -> dict[int, int]:
        """Wait until every partition of ``topic`` has a leader that is not one of ``excluding``; return the leaders.

        After :meth:`kill` of a leader this lasts until the controller fences the dead node
        (``broker.session.timeout.ms``, 9 s by default) and elects an in-sync replica.
        """
        banned = set(excluding)

        def moved() -> dict[int, int]:
            leaders = self.partition_leaders(topic)
            ok = leaders and all(leader >= 0 and leader not in banned for leader in leaders.values())
            return leaders if ok else {}

        return self._wait(f"leaders of {topic!r} outside {sorted(banned)}", timeout, moved)  # type: ignore[return-value]

    def wait_in_sync(self, topic: str, node_id: int, timeout: float = 120.0) -> None:
        """Wait until ``node_id`` is back in the in-sync replicas of every partition of ``topic`` it holds a replica of."""

        def in_sync() -> bool:
            parts = self.partitions(topic)
            held = [isr for _, replicas, isr in parts.values() if node_id in replicas]
            return bool(held) and all(node_id in isr for isr in held)

        self._wait(f"node {node_id} in the ISR of {topic!r}", timeout, in_sync)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
