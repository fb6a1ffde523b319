"""``python -m services fetch|up|down|status|jars``: the local Artemis and Kafka from the shell."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version

from services.fetch import FetchError, fetch_all
from services.process import ServiceError
from services.settings import ServiceSettings
from services.stack import LocalServices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument(
        "command",
        choices=["fetch", "up", "down", "status", "jars"],
        help="fetch: JVM parts into the cache; up/down: start/stop Artemis and Kafka; "
        "status: pids and readiness; jars: the Spark Kafka connector jars, comma-separated (for --jars)",
    )
    args = parser.parse_args(argv)
    settings = ServiceSettings.from_env()
    try:
        if args.command == "fetch":
            parts = fetch_all(settings)
            print(f"artemis: {parts.artemis_home}\nkafka:   {parts.kafka_libs}\nspark-kafka: {len(parts.spark_kafka_jars)} jars")
            return 0
        if args.command == "jars":
            print(",".join(str(p) for p in fetch_all(settings).spark_kafka_jars))
            return 0
        services = LocalServices(settings)
        if args.command == "up":
            services.start()
            print(f"artemis: {services.amqp_url} (pid {services.artemis.process.pid}, log {services.artemis.process.log_file})")
            print(f"kafka:   {services.kafka_bootstrap} (pid {services.kafka.process.pid}, log {services.kafka.process.log_file})")
        elif args.command == "down":
            services.stop()
            print("artemis and kafka stopped")
        else:
            up = True
            for name, svc, where in (
                ("artemis", services.artemis, services.amqp_url),
                ("kafka", services.kafka, services.kafka_bootstrap),
            ):
                pid = svc.process.pid
                ready = svc.ready()
                up &= ready
                state = "ready" if ready else ("starting or unresponsive" if pid else "stopped")
                print(f"{name:8} {where:28} {state}" + (f" (pid {pid})" if pid else ""))
            return 0 if up else 3
    except (FetchError, ServiceError) as err:
        print(f"services: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
