"""What a bridged link may use: the narrow view of the bridge below the links.

A link gets a :class:`LinkContext` and nothing else of the bridge, so control flows one way:
the core (``amqp_kafka_bridge.core``) attaches, drains and closes links; links settle
deliveries, produce records and run their consumers, and never call back up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amqp_kafka_bridge.converters import MessageConverter
from amqp_kafka_bridge.kafka_io import ProducerPump, Signal
from amqp_kafka_bridge.metrics import BridgeMetrics
from amqp_kafka_bridge.producer_lane import LanePump
from amqp_kafka_bridge.settings import BridgeSettings


@dataclass(frozen=True)
class LinkContext:
    """Shared by every link of one bridge; used on the reactor thread only.

    ``converter`` is the configured body format, chosen once; ``producer`` is the bridge's one
    Kafka producer, the native lane or the Python one (its reports come back to the links
    through the core: per link counts and failures from the lane, an ``on_ack`` per record else);
    ``records_signal`` is what a link's consumer sets when it has records for the reactor.
    ``unflushed`` holds the links that counted messages since the metrics were last updated:
    the core calls their ``flush_metrics`` once per burst of events, not once per message.
    ``producing`` holds the links with records queued in this burst: the core calls their
    ``produce_queued`` when the burst ends.
    """

    settings: BridgeSettings
    metrics: BridgeMetrics
    converter: MessageConverter
    producer: ProducerPump | LanePump
    records_signal: Signal
    unflushed: set[Any] = field(default_factory=set)
    producing: list[Any] = field(default_factory=list)
