"""One set of rules for AMQP 1.0 messages as bytes and text, shared by the Spark connector and the bridge.

``values``: how every AMQP body, property value, message id, content type and time becomes
bytes or text. ``sections``: reading an encoded message's sections without decoding them
(the guards and the redelivery digest), and ``SectionCode``, the one table of their codes.
``connection``: broker URLs, failover, SASL and TLS as python-qpid-proton connect arguments,
and URL redaction. ``encoding`` and ``decoding``: messages written and the common shape read
in plain Python, with proton's bytes and types, for senders and receivers that cannot afford
a proton ``Message`` per message.

Depends on python-qpid-proton only, so the bridge installs without pyspark.
"""

from importlib.metadata import PackageNotFoundError, version

from amqp_message_model.connection import ConnectionOptions, Endpoint, connect_kwargs, parse_endpoints, redact_url
from amqp_message_model.sections import (
    SectionCode,
    amqp_sections,
    bare_message_digest,
    body_as_sent,
    decode_message,
    is_encoded_message,
)
from amqp_message_model.values import (
    MESSAGE_FIELDS,
    body_to_bytes,
    content_type_of,
    creation_seconds,
    id_to_text,
    to_json_value,
    value_to_bytes,
    value_to_text,
)

try:
    __version__ = version("amqp-message-model")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "MESSAGE_FIELDS",
    "ConnectionOptions",
    "Endpoint",
    "SectionCode",
    "amqp_sections",
    "bare_message_digest",
    "body_as_sent",
    "body_to_bytes",
    "connect_kwargs",
    "content_type_of",
    "creation_seconds",
    "decode_message",
    "id_to_text",
    "is_encoded_message",
    "parse_endpoints",
    "redact_url",
    "to_json_value",
    "value_to_bytes",
    "value_to_text",
]
