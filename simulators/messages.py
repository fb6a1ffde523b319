"""The message contracts (DESIGN.md) as pure conversions, one per direction.

Temperature message: ``content_type`` application/json, body a *data* section
with the UTF-8 JSON of a :class:`~simulators.model.Reading`, ``subject`` and
application property ``device_id`` = the device id.

Pitfall: proton encodes a ``bytes`` body as an amqp-value (binary) unless
``inferred=True``; only the latter is a data section.
"""

from __future__ import annotations

import json
from typing import Any

from proton import Message

from simulators.model import Reading

CONTENT_TYPE = "application/json"


def reading_to_message(reading: Reading) -> Message:
    """The AMQP message of the temperature contract for ``reading`` (durable)."""
    return Message(
        body=reading.to_json().encode("utf-8"),
        inferred=True,
        content_type=CONTENT_TYPE,
        subject=reading.device_id,
        properties={"device_id": reading.device_id},
        durable=True,
    )


def body_text(message: Message) -> str:
    """The body as text, whatever AMQP body type carried it.

    Accepts a data section (bytes/memoryview), an amqp-value string, or an
    amqp-value map/list (re-encoded as JSON), so receivers work against sinks
    that send strings as well as those that send binary.
    """
    body = message.body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body).decode("utf-8")
    if isinstance(body, str):
        return body
    return json.dumps(body, default=str)


def message_to_reading(message: Message) -> Reading:
    """Parse a temperature message back into a :class:`Reading` (raises on bad input)."""
    return Reading.from_json(body_text(message))


def message_to_json(message: Message) -> dict[str, Any]:
    """Parse any JSON message body into a dict (raises ``ValueError`` on bad input)."""
    obj = json.loads(body_text(message))
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return obj
