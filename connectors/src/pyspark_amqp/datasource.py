"""``AmqpDataSource``: the ``amqp`` format's entry point for Spark."""

from __future__ import annotations

import uuid
from collections.abc import MutableMapping

from pyspark.sql.datasource import DataSource, DataSourceReader, DataSourceStreamReader, DataSourceStreamWriter, DataSourceWriter
from pyspark.sql.types import StructType

from pyspark_amqp.conversion import source_schema_ddl


class AmqpDataSource(DataSource):
    """AMQP 1.0 as a Spark Structured Streaming source and sink.

    Name: ``amqp``

    The source receives from one or more addresses of an AMQP 1.0 broker or router
    (ActiveMQ Artemis, Qpid Dispatch, RabbitMQ's AMQP 1.0, ...). Every delivery is written
    to a durable write-ahead log before it is accepted at the broker; Spark's offsets are
    positions in that log, so a query restarted from its checkpoint replays what it had not
    committed. No accepted message is lost; with an idempotent or checkpointed sink none is
    counted twice.

    Source options (keys are case-insensitive)
    ------------------------------------------
    url : str, required
        ``amqp[s]://[user:pass@]host:port``; several, comma-separated, for failover.
    address : str, required
        Address(es) to receive from, comma-separated.
    logDir : str, required unless ``atMostOnce=true``
        Folder of the write-ahead log. On a cluster it must be on storage that the driver
        writes and every executor reads at the same path (e.g. NFS), because ``read()``
        runs on the executors. Keep it with the checkpoint: both together are the query's state.
    atMostOnce : bool, default false
        No durable log: accept on arrival (a crash can lose what was not yet processed).
    credit : int, default 1000
        AMQP link credit per receiver (messages in flight from the broker).
    receivers : int, default 1
        Receiving links per address, each in its own process and log partition (and Spark
        input partition); use 2 or more past ~20k messages/s.
    maxMessagesPerTrigger : int, optional
        Upper bound on messages per micro-batch (like Kafka's ``maxOffsetsPerTrigger``),
        shared across partitions in proportion to their backlog.
    maxBufferedMessages : int, default 1000000
        Credit is withheld while this many logged messages wait for a micro-batch.
    failOnDataLoss : bool, default true
        Fail when an offset range is no longer in the log; false skips it.
    user, password, saslMechanisms : str, optional
        SASL credentials and allowed mechanisms (credentials may also be in the url).
    sslCaFile, sslCertFile, sslKeyFile, sslKeyPassword, sslVerifyHostname : optional
        TLS: trusted CAs (turns TLS on), client certificate and key, host name check.
    connectTimeout, startTimeout, logSegmentBytes : optional
        Seconds to connect, seconds to wait for the receivers to attach, segment size.
    selector : str, optional
        JMS/SQL-92 selector, sent as the ``apache.org:selector-filter:string`` source filter;
        a broker that refuses or ignores it fails the query with its words.
    includeAnnotations : bool, default false
        Add a ``message_annotations`` column (map<string,string>), like Kafka's ``includeHeaders``.
    minMessagesPerTrigger : int, optional; maxTriggerDelay : duration, default 15m
        Streams: hold a micro-batch back until this many messages are logged or the delay
        since the last batch has passed (Kafka's ``minOffsetsPerTrigger``/``maxTriggerDelay``).
    mode : consume | browse, default consume
        Batch reads (``spark.read``): take the messages through the log, or look without
        taking (distribution mode copy). See :mod:`pyspark_amqp.batch`.
    maxMessages : int, optional; timeout : seconds, default 60; quietPeriod : seconds, default 1
        Batch reads end at ``maxMessages``, at ``timeout``, or after ``quietPeriod`` without
        a new message; an empty queue is an empty DataFrame.

    Columns
    -------
    ``body`` binary, ``address`` string, ``partition`` int, ``offset`` long,
    ``message_id``, ``correlation_id``, ``subject``, ``content_type`` string,
    ``creation_time``, ``received_time`` timestamp, ``application_properties``
    map<string,string>, ``durable`` boolean, ``priority`` int, ``delivery_count`` long;
    ``message_annotations`` map<string,string> with ``includeAnnotations``.
    Any AMQP body converts (see :mod:`pyspark_amqp.conversion`);
    :func:`pyspark_amqp.parse_json_body` turns JSON bodies into typed columns.

    Sink options
    ------------
    url (and the SASL/TLS options above); ``address`` (default target; a per-row
    ``address`` column wins); ``maxInFlight`` (default 1000); ``sendTimeout`` (seconds,
    default 60). Columns: ``body`` (string or binary) required; ``address``, ``subject``,
    ``message_id``, ``correlation_id``, ``content_type``, ``application_properties``
    optional. A task succeeds only when the broker accepted every message it sent; a
    rejection fails it with the broker's condition (at-least-once on retry).

    Notes
    -----
    Settlement never waits for Spark's ``commit`` (the last batch's commit never comes);
    ``commit`` only trims the log. A message written to the log whose acceptance was cut
    off by a lost connection is redelivered by the broker and may appear twice.

    Examples
    --------
    >>> from pyspark_amqp import AmqpDataSource
    >>> spark.dataSource.register(AmqpDataSource)  # doctest: +SKIP
    >>> readings = (spark.readStream.format("amqp")  # doctest: +SKIP
    ...     .option("url", "amqp://127.0.0.1:5672").option("address", "temperature")
    ...     .option("logDir", "/var/lib/myjob/amqp-log").load())
    >>> query = (readings.selectExpr("CAST(body AS STRING) AS body")  # doctest: +SKIP
    ...     .writeStream.format("amqp").option("url", "amqp://127.0.0.1:5672")
    ...     .option("address", "copy").option("checkpointLocation", "/var/lib/myjob/ckpt").start())
    """

    def __init__(self, options: MutableMapping[str, str]) -> None:
        super().__init__(options)
        # Spark creates the data source once per load() and reuses it for every plan of that
        # DataFrame: a batch read uses this id to return the same rows to every action.
        self.read_id = uuid.uuid4().hex

    @classmethod
    def name(cls) -> str:
        return "amqp"

    def schema(self) -> str:
        # Called at load(): validating here fails a bad option before any query starts.
        from pyspark_amqp.options import parse_source_options

        return source_schema_ddl(parse_source_options(self.options).include_annotations)

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        from pyspark_amqp.options import parse_source_options
        from pyspark_amqp.source import AmqpStreamReader

        return AmqpStreamReader(parse_source_options(self.options, "stream"))

    def reader(self, schema: StructType) -> DataSourceReader:
        from pyspark_amqp.batch import AmqpBatchReader
        from pyspark_amqp.options import parse_source_options

        return AmqpBatchReader(parse_source_options(self.options, "batch"), self.read_id)

    def streamWriter(self, schema: StructType, overwrite: bool) -> DataSourceStreamWriter:
        from pyspark_amqp.options import parse_sink_options
        from pyspark_amqp.sink import AmqpStreamWriter

        return AmqpStreamWriter(parse_sink_options(self.options), schema)

    def writer(self, schema: StructType, overwrite: bool) -> DataSourceWriter:
        from pyspark_amqp.options import parse_sink_options
        from pyspark_amqp.sink import AmqpBatchWriter

        return AmqpBatchWriter(parse_sink_options(self.options), schema)
