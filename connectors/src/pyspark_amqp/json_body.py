"""Turn JSON ``body`` bytes into typed columns from a DDL schema."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def parse_json_body(df: DataFrame, ddl: str, column: str = "body", keep: tuple[str, ...] = ()) -> DataFrame:
    """Parse ``column`` (binary or string JSON) with the DDL schema ``ddl`` into top-level columns.

    Rows whose body is not valid JSON for the schema are kept with the parsed columns null and
    ``_corrupt_body`` set to the raw text, so that bad input can be counted or routed instead
    of failing the query. ``keep`` names source columns to carry along (e.g. ``"received_time"``).

    >>> parse_json_body(df, "device_id STRING, temperature DOUBLE, ts LONG")  # doctest: +SKIP
    """
    text: Column = F.col(column).cast("string")
    parsed = F.from_json(
        text, f"{ddl}, _corrupt_body STRING", {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_body"}
    )
    return df.select(*keep, parsed.alias("_parsed")).select(*keep, "_parsed.*")
