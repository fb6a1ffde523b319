"""The ``amqp`` Spark data source: a reliable AMQP 1.0 source and a sink.

>>> from connectors.amqp import AmqpDataSource
>>> spark.dataSource.register(AmqpDataSource)                       # doctest: +SKIP
>>> df = spark.readStream.format("amqp").option("url", "amqp://127.0.0.1:5672") \\
...     .option("address", "temperature").option("logDir", "/tmp/amqp-log").load()  # doctest: +SKIP
"""

from connectors.amqp.datasource import AmqpDataSource
from connectors.amqp.json_body import parse_json_body
from connectors.amqp.options import AmqpOptionError

__all__ = ["AmqpDataSource", "AmqpOptionError", "parse_json_body"]
