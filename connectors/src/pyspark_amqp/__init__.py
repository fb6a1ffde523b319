"""The ``amqp`` Spark data source: a reliable AMQP 1.0 source and a sink.

Installed (``pip install pyspark-amqp``), it needs no registration: Spark 4 imports every
top-level ``pyspark_*`` module that has a ``DefaultSource`` and registers it by its name.

>>> df = spark.readStream.format("amqp").option("url", "amqp://127.0.0.1:5672") \\
...     .option("address", "temperature").option("logDir", "/tmp/amqp-log").load()  # doctest: +SKIP
"""

from importlib.metadata import PackageNotFoundError, version

from pyspark_amqp.datasource import AmqpDataSource
from pyspark_amqp.json_body import parse_json_body
from pyspark_amqp.options import AmqpOptionError

try:
    __version__ = version("pyspark-amqp")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

DefaultSource = AmqpDataSource
"""What Spark's data source lookup imports from every top-level ``pyspark_*`` module."""

__all__ = ["AmqpDataSource", "AmqpOptionError", "DefaultSource", "__version__", "parse_json_body"]
