"""``python -m services fetch|up|down|status|jars``: the local AMQP broker (``BROKER``) and Kafka from the shell.

``up --kafka-nodes 3`` starts a replicated KRaft cluster instead of the single Kafka node,
``up --artemis-ha`` a replicated Artemis primary/backup pair instead of the single broker
(ports in :mod:`services.replicated`).
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version

from services.fetch import FetchError, fetch_all
from services.process import ServiceError
from services.rabbitmq import ensure_installed
from services.replicated import artemis_pair, cluster_nodes_on_disk, kafka_cluster
from services.settings import ServiceSettings
from services.stack import LocalServices, all_brokers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument(
        "command",
        choices=["fetch", "up", "down", "status", "jars"],
        help="fetch: JVM parts into the cache (and RabbitMQ's package with BROKER=rabbitmq); "
        "up/down: start/stop the broker BROKER names (artemis, activemq, rabbitmq; down stops any) and Kafka; "
        "status: pids and readiness (give it the same --kafka-nodes/--artemis-ha as up); jars: the Spark Kafka connector jars, comma-separated (for --jars)",
    )
    parser.add_argument(
        "--kafka-nodes",
        type=int,
        default=1,
        metavar="N",
        help="up: a KRaft cluster of N nodes (replication factor 3, min.insync.replicas 2 from 3 nodes) instead of one",
    )
    parser.add_argument(
        "--artemis-ha", action="store_true", help="up: a replicated Artemis primary/backup pair instead of one broker"
    )
    args = parser.parse_args(argv)
    settings = ServiceSettings.from_env()
    if args.kafka_nodes < 1:
        parser.error(f"--kafka-nodes must be at least 1, got {args.kafka_nodes}")
    if args.artemis_ha and settings.broker != "artemis":
        parser.error(f"--artemis-ha needs BROKER=artemis, not {settings.broker}")
    try:
        if args.command == "fetch":
            parts = fetch_all(settings)
            print(f"artemis: {parts.artemis_home}\nkafka:   {parts.kafka_libs}\nspark-kafka: {len(parts.spark_kafka_jars)} jars")
            if parts.activemq_home is not None:
                print(f"activemq: {parts.activemq_home}")
            if settings.broker == "rabbitmq":
                print(f"rabbitmq: {ensure_installed()} (Debian package)")
            return 0
        if args.command == "jars":
            print(",".join(str(p) for p in fetch_all(settings).spark_kafka_jars))
            return 0
        if args.command == "down":
            # Whatever broker an earlier `make up BROKER=...` started, whatever BROKER says now.
            services = LocalServices(settings)
            services.kafka.stop()
            for broker in all_brokers(settings):
                broker.stop()
            parts = fetch_all(settings)
            if cluster_nodes_on_disk(settings):
                kafka_cluster(settings, cluster_nodes_on_disk(settings), parts.kafka_libs).stop()
            artemis_pair(settings, parts.artemis_home).stop()
            print("brokers and kafka stopped")
            return 0
        if args.kafka_nodes > 1 or args.artemis_ha:
            return _replicated(args.command, settings, args.kafka_nodes, args.artemis_ha)
        services = LocalServices(settings)
        name = settings.broker
        if args.command == "up":
            services.start()
            print(f"{name}: {services.amqp_url} (pid {services.broker.process.pid}, log {services.broker.process.log_file})")
            print(
                f"kafka:   {services.kafka_bootstrap} (pid {services.kafka.process.pid}, log {services.kafka.process.log_file})"
            )
        else:
            up = True
            for label, svc, where in (
                (name, services.broker, services.amqp_url),
                ("kafka", services.kafka, services.kafka_bootstrap),
            ):
                pid = svc.process.pid
                ready = svc.ready()
                up &= ready
                state = "ready" if ready else ("starting or unresponsive" if pid else "stopped")
                print(f"{label:8} {where:28} {state}" + (f" (pid {pid})" if pid else ""))
            return 0 if up else 3
    except (FetchError, ServiceError) as err:
        print(f"services: {err}", file=sys.stderr)
        return 1
    return 0


def _replicated(command: str, settings: ServiceSettings, kafka_nodes: int, artemis_ha: bool) -> int:
    """``up`` or ``status`` with a Kafka cluster and/or an Artemis pair in place of the single services."""
    services = LocalServices(settings)
    parts = fetch_all(settings)
    pair = artemis_pair(settings, parts.artemis_home) if artemis_ha else None
    cluster = kafka_cluster(settings, kafka_nodes, parts.kafka_libs) if kafka_nodes > 1 else None
    if command == "up":
        broker = pair or services.broker
        kafka = cluster or services.kafka
        try:
            broker.start()
            kafka.start()
            broker.wait_ready()
            kafka.wait_ready()
        except BaseException:
            kafka.stop()
            broker.stop()
            raise
        print(f"artemis: {pair.url} (primary and backup, replicating)" if pair else f"artemis: {services.amqp_url}")
        print(f"kafka:   {cluster.bootstrap} ({kafka_nodes} nodes)" if cluster else f"kafka:   {services.kafka_bootstrap}")
        return 0
    up = True
    if not pair:
        up &= services.broker.ready()
        print(f"{settings.broker:16} {services.amqp_url:28} {'ready' if services.broker.ready() else 'not ready'}")
    if not cluster:
        up &= services.kafka.ready()
        print(f"{'kafka':16} {services.kafka_bootstrap:28} {'ready' if services.kafka.ready() else 'not ready'}")
    if pair:
        for name, broker in (("primary", pair.primary), ("backup", pair.backup)):
            pid = broker.process.pid
            state = "serving" if broker.ready() else ("passive or starting" if pid else "stopped")
            up &= pid is not None
            print(f"artemis-{name:8} {broker.url:28} {state}" + (f" (pid {pid})" if pid else ""))
    if cluster:
        registered = cluster.registered_brokers()
        for node_id, node in cluster.nodes.items():
            pid = node.process.pid
            state = "registered" if node_id in registered else ("starting or unresponsive" if pid else "stopped")
            up &= node_id in registered
            print(f"kafka-{node_id:<11}{node.spec.bootstrap:28} {state}" + (f" (pid {pid})" if pid else ""))
    return 0 if up else 3


if __name__ == "__main__":
    sys.exit(main())
