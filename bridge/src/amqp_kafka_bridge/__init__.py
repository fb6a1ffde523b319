"""AMQP 1.0 <-> Kafka bridge: an AMQP endpoint (server mode) or broker client (forwarder mode) in front of Kafka.

>>> from amqp_kafka_bridge import Bridge, BridgeSettings
>>> with Bridge(BridgeSettings.load(amqp_port=5673)) as running:   # doctest: +SKIP
...     ...  # AMQP clients attach to amqp://127.0.0.1:5673, target = Kafka topic

Run it as a service with the ``amqp-kafka-bridge`` command (see ``docs/bridge.md``).
"""

from importlib.metadata import PackageNotFoundError, version

from amqp_kafka_bridge.app import Bridge
from amqp_kafka_bridge.converters import ConversionError, KafkaRecord, to_message, to_record
from amqp_kafka_bridge.settings import BridgeSettings, Route

try:
    __version__ = version("amqp-kafka-bridge")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "Bridge", "BridgeSettings", "ConversionError", "KafkaRecord", "Route", "to_message", "to_record"]
