"""AMQP values as bytes and text: the one rendering that Spark columns and Kafka records share.

=========================================  ==============================================
AMQP value                                 text (``value_to_text``) / JSON
=========================================  ==============================================
string, symbol, char                       as it is
boolean                                    ``true`` / ``false``
integer of any width, timestamp            decimal digits (a timestamp: epoch milliseconds)
float, double                              Python's shortest repr; ``NaN``, ``inf``, ``-inf``
UUID                                       ``8-4-4-4-12`` hex, lower case
binary                                     base64 (standard alphabet, padded)
list, array, map, described, null          compact JSON of the above (a described value is
                                           ``{"descriptor": ..., "value": ...}``)
=========================================  ==============================================

Bytes (``value_to_bytes``, e.g. a Kafka header): a binary value is its own bytes, anything
else is the UTF-8 of its text. A body (``body_to_bytes``): data sections and binary values
as they are, a string as UTF-8, any other value as the compact JSON above.

A message id or correlation id is text as above except binary, which is lower-case hex.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

from proton import Array, Described, Message

# The AMQP properties that travel with a message besides its body and application
# properties (proton attribute names), in the order the connector and the bridge list them.
MESSAGE_FIELDS = ("subject", "id", "correlation_id", "content_type")

_UTC = dt.timezone.utc
_BINARY = (bytes, bytearray, memoryview)


def to_json_value(value: Any) -> Any:
    """An AMQP-typed value as a JSON-serialisable value (see the module table); never raises."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else value_to_text(value)  # JSON has no NaN/Infinity
    if isinstance(value, _BINARY):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else value_to_text(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, Array):
        return [to_json_value(v) for v in value.elements]
    if isinstance(value, Described):
        return {"descriptor": to_json_value(value.descriptor), "value": to_json_value(value.value)}
    return str(value)  # UUID, decimal types, anything proton adds later


def json_text(value: Any) -> str:
    """Compact JSON of an AMQP-typed value (module table)."""
    return json.dumps(to_json_value(value), separators=(",", ":"), ensure_ascii=False)


def value_to_text(value: Any) -> str | None:
    """An application property (or annotation) value as text (module table); ``None`` stays ``None``."""
    if value is None or isinstance(value, str):
        return None if value is None else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("NaN" if value != value else str(value))  # inf, -inf
    if isinstance(value, _BINARY):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (Mapping, list, tuple, Array, Described)):
        return json_text(value)
    return str(value)  # UUID, decimal types


def value_to_bytes(value: Any) -> bytes:
    """A property value as bytes: binary as it is, anything else the UTF-8 of :func:`value_to_text`."""
    if isinstance(value, _BINARY):
        return bytes(value)
    text = value_to_text(value)
    return b"" if text is None else text.encode("utf-8")


def body_to_bytes(body: Any) -> bytes | None:
    """A message body as bytes (module docstring); ``None`` for no body or an amqp-value null."""
    if body is None:
        return None
    if isinstance(body, _BINARY):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return json_text(body).encode("utf-8")


def id_to_text(value: Any) -> str | None:
    """A message id or correlation id as text: binary as hex, a UUID, ulong or string as ``str``."""
    if value is None:
        return None
    if isinstance(value, _BINARY):
        return bytes(value).hex()
    return str(value)


def content_type_of(message: Message) -> str | None:
    """The content type, or ``None`` when there is none.

    Pitfall: python-qpid-proton 0.40 reports an absent content type as ``symbol('None')``;
    taken at face value it would travel on as the content type ``"None"``.
    """
    value = message.content_type
    return None if value is None or value == "None" or value == "" else str(value)


# Times outside years 1..9999 are out of reach of Python's datetime and of Spark.
_MIN_TIME_S = (dt.datetime(1, 1, 2, tzinfo=_UTC) - dt.datetime(1970, 1, 1, tzinfo=_UTC)).total_seconds()
_MAX_TIME_S = (dt.datetime(9999, 12, 31, tzinfo=_UTC) - dt.datetime(1970, 1, 1, tzinfo=_UTC)).total_seconds()


def creation_seconds(seconds: float | None) -> float | None:
    """proton's ``creation_time`` (float seconds, 0 = not set) if it is a representable time, else ``None``."""
    if not seconds or not _MIN_TIME_S <= seconds <= _MAX_TIME_S:
        return None
    return seconds
