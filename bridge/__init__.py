"""AMQP 1.0 <-> Kafka bridge: an AMQP endpoint (server mode) or broker client (forwarder mode) in front of Kafka.

>>> from bridge import Bridge, BridgeSettings
>>> with Bridge(BridgeSettings.load(amqp_port=5673)) as running:   # doctest: +SKIP
...     ...  # AMQP clients attach to amqp://127.0.0.1:5673, target = Kafka topic

Run it as a service with ``python -m bridge`` (see ``docs/bridge.md``).
"""

from bridge.app import Bridge
from bridge.converters import ConversionError, KafkaRecord, to_message, to_record
from bridge.settings import BridgeSettings, Route

__all__ = ["Bridge", "BridgeSettings", "ConversionError", "KafkaRecord", "Route", "to_message", "to_record"]
