"""``python -m demo``: start the real services and show them working.

Until the whole story (simulator -> Spark job -> ``max``) is wired in, this is a smoke of
the foundation: Artemis and Kafka start, messages go through both, and they stop again.
"""

from __future__ import annotations

import argparse
import sys
import time

from confluent_kafka import Consumer, Producer
from proton import Message
from proton.utils import BlockingConnection

from services import LocalServices, ServiceSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--duration", type=float, default=0, help="keep the services up this many seconds before stopping")
    args = parser.parse_args(argv)
    with LocalServices(ServiceSettings.from_env()) as svc:
        print(f"artemis ready at {svc.amqp_url}; kafka ready at {svc.kafka_bootstrap}")
        conn = BlockingConnection(svc.amqp_url, timeout=10)
        sender = conn.create_sender("demo-smoke")
        for i in range(10):
            sender.send(Message(body=f"hello {i}"))
        receiver = conn.create_receiver("demo-smoke", credit=10)
        bodies = [receiver.receive(timeout=10).body for _ in range(10)]
        receiver.accept()
        conn.close()
        print(f"AMQP round trip: {len(bodies)} messages")
        producer = Producer({"bootstrap.servers": svc.kafka_bootstrap})
        for i in range(10):
            producer.produce("demo-smoke", value=f"hello {i}".encode())
        producer.flush(10)
        consumer = Consumer({"bootstrap.servers": svc.kafka_bootstrap, "group.id": "demo-smoke", "auto.offset.reset": "earliest"})
        consumer.subscribe(["demo-smoke"])
        got = consumer.consume(10, timeout=10)
        consumer.close()
        print(f"Kafka round trip: {len(got)} records")
        if args.duration:
            time.sleep(args.duration)
    print("services stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
