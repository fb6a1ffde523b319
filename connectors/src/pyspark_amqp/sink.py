"""The ``amqp`` sink: rows -> AMQP messages, a task succeeding only when the broker accepted all.

``write`` runs in executor tasks and takes the rows as Arrow record batches (Spark's
Arrow writers: no ``Row`` object per row). It sends unsettled, with at most ``maxInFlight``
messages awaiting the broker's outcome, one sender link per target address. A ``rejected``
or ``modified(undeliverable)`` outcome, refused credentials or certificates, or no progress
within ``sendTimeout`` (e.g. a broker unreachable for that long) fail the task with the
broker's condition; Spark then retries it. A lost connection is ridden out: the task
reconnects and sends the unsettled messages again. Messages the broker had already accepted
stay sent: the sink is at-least-once (make the consumer idempotent, e.g. on ``message_id``
or the result's key, where that matters). A partition without rows opens no connection.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyspark.sql.datasource import DataSourceArrowWriter, DataSourceStreamArrowWriter, WriterCommitMessage
from pyspark.sql.types import BinaryType, MapType, StringType, StructType

from pyspark_amqp.options import SinkOptions


class AmqpSendError(RuntimeError):
    """The broker refused a message, or could not be reached; the message says which and why."""


_STRING_COLUMNS = ("address", "subject", "message_id", "correlation_id", "content_type")


def validate_sink_schema(schema: StructType, default_address: str | None) -> tuple[str, ...]:
    """Check the columns the sink uses; returns their names. Other columns are ignored, as Kafka's sink does."""
    fields = {f.name: f.dataType for f in schema.fields}
    if "body" not in fields:
        raise ValueError(
            f"the amqp sink needs a 'body' column (string or binary); the data has {sorted(fields)}. "
            "Build one, e.g. df.selectExpr('to_json(struct(*)) AS body')"
        )
    if not isinstance(fields["body"], (StringType, BinaryType)):
        raise ValueError(f"the amqp sink's 'body' column must be string or binary, not {fields['body'].simpleString()}: cast it")
    for name in _STRING_COLUMNS:
        if name in fields and not isinstance(fields[name], StringType):
            raise ValueError(f"the amqp sink's '{name}' column must be a string, not {fields[name].simpleString()}")
    if "application_properties" in fields:
        t = fields["application_properties"]
        if not (isinstance(t, MapType) and isinstance(t.keyType, StringType)):
            raise ValueError("the amqp sink's 'application_properties' column must be map<string, ...>")
    if "address" not in fields and not default_address:
        raise ValueError("the amqp sink needs option 'address' or an 'address' column to know where to send")
    return tuple(n for n in ("body", *_STRING_COLUMNS, "application_properties") if n in fields)


@dataclass
class AmqpCommitMessage(WriterCommitMessage):
    sent: int


def rows_of(batches: Iterator[Any], columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Arrow record batches -> one ``{column: value}`` dict per row, for the columns the sink uses.

    A column is converted to Python values once per batch (``to_pylist``); a map column
    arrives as a list of ``(key, value)`` pairs, which ``row_to_message`` takes as it takes a dict.
    """
    for batch in batches:
        names = batch.schema.names
        values = [batch.column(names.index(c)).to_pylist() for c in columns]
        for row in zip(*values, strict=True):
            yield dict(zip(columns, row, strict=True))


def send_rows(options: SinkOptions, rows: Iterator[dict[str, Any]]) -> int:
    """Send every row and wait for the broker to accept each; returns how many were sent."""
    from proton.reactor import Container

    from pyspark_amqp.sender import RowSender

    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0  # nothing to send: no connection (an empty micro-batch must not need the broker)
    handler = RowSender(options, itertools.chain([first], rows))
    Container(handler).run()
    if handler.failure:
        raise AmqpSendError(handler.failure)
    return handler.accepted


class _RowWriter:
    """What the streaming and the batch writer share: the validated columns and ``write`` (on executors)."""

    def __init__(self, options: SinkOptions, schema: StructType) -> None:
        self.options = options
        self.columns = validate_sink_schema(schema, options.address)

    def write(self, iterator: Iterator[Any]) -> AmqpCommitMessage:
        """Runs in an executor task with the partition's rows as Arrow record batches."""
        return AmqpCommitMessage(sent=send_rows(self.options, rows_of(iterator, self.columns)))


class AmqpStreamWriter(_RowWriter, DataSourceStreamArrowWriter):
    """Streaming writer; ``commit`` on the driver has nothing to finish: every message was already accepted."""

    def commit(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:
        pass

    def abort(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:
        """Accepted messages cannot be recalled; Spark retries the batch (at-least-once)."""


class AmqpBatchWriter(_RowWriter, DataSourceArrowWriter):
    """``df.write.format("amqp")``: the same sending, for batch jobs."""
