"""Spark Python data sources for AMQP 1.0 (``spark.readStream.format("amqp")``)."""
