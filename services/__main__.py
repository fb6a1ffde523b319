"""``python -m services fetch|up|down|status|jars``: the local AMQP broker (``BROKER``) and Kafka from the shell."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version

from services.fetch import FetchError, fetch_all
from services.process import ServiceError
from services.rabbitmq import ensure_installed
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
        "status: pids and readiness; jars: the Spark Kafka connector jars, comma-separated (for --jars)",
    )
    args = parser.parse_args(argv)
    settings = ServiceSettings.from_env()
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
            print("brokers and kafka stopped")
            return 0
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


if __name__ == "__main__":
    sys.exit(main())
