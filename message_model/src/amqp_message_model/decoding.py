"""The common shape of an encoded AMQP message, read in plain Python for receivers that cannot afford proton's decode.

proton's ``Message.decode`` and the attribute reads after it cost 7-17 us per message in
Python (every section goes through ``Data``, one C call per value). Most messages an IoT
pipeline carries are simple: a header, maybe annotations, properties with string fields,
application properties with string or number values and one ``data`` or string body.
:func:`read_plain` reads exactly that shape, in a few microseconds, into a
:class:`PlainMessage` whose attributes have the names and the Python types proton's
``Message`` gives them, so code written against proton's ``Message`` reads either.

Anything outside that shape (a described or compound value, an unsigned or 32-bit number
where the types would differ from proton's, several body sections, a footer with content,
malformed input) gives ``None``: the caller decodes with proton, which also gives the error
for input that is not a message.
"""

from __future__ import annotations

import struct
from typing import Any

from proton import symbol

from amqp_message_model.sections import SectionCode, value_end

_unpack_long = struct.Struct(">q").unpack_from
_unpack_double = struct.Struct(">d").unpack_from
_unpack_u32 = struct.Struct(">I").unpack_from

# Plain ints, not enum members: :func:`_read` compares every section's code with them.
_HEADER, _DELIVERY_ANNOTATIONS = int(SectionCode.HEADER), int(SectionCode.DELIVERY_ANNOTATIONS)
_MESSAGE_ANNOTATIONS, _PROPERTIES = int(SectionCode.MESSAGE_ANNOTATIONS), int(SectionCode.PROPERTIES)
_APPLICATION_PROPERTIES, _DATA = int(SectionCode.APPLICATION_PROPERTIES), int(SectionCode.DATA)
_AMQP_VALUE, _FOOTER = int(SectionCode.AMQP_VALUE), int(SectionCode.FOOTER)


class _NotPlain(Exception):
    """The message leaves the shape :func:`read_plain` reads (or is malformed)."""


class PlainMessage:
    """The parts of a message read by :func:`read_plain`, named and typed as on proton's ``Message``."""

    __slots__ = ("annotations", "body", "content_type", "correlation_id", "creation_time", "id", "properties", "subject")

    def __init__(self) -> None:
        self.annotations: dict[symbol, Any] | None = None
        self.properties: dict[str, Any] | None = None
        self.body: Any = None
        self.id: str | None = None
        self.correlation_id: str | None = None
        self.subject: str | None = None
        self.content_type: symbol | None = None
        self.creation_time = 0.0  # seconds, 0 when unset (proton's convention)


def _value(buf: bytes, pos: int) -> tuple[Any, int]:
    """A scalar of the types proton gives as plain Python values (and symbols); ``_NotPlain`` otherwise."""
    code = buf[pos]
    if code == 0xA1:  # str8
        end = pos + 2 + buf[pos + 1]
        return buf[pos + 2 : end].decode(), end
    if code == 0x40:
        return None, pos + 1
    if code == 0xA0:  # vbin8
        end = pos + 2 + buf[pos + 1]
        return buf[pos + 2 : end], end
    if code == 0xA3:  # sym8
        end = pos + 2 + buf[pos + 1]
        return symbol(buf[pos + 2 : end].decode("ascii")), end
    if code == 0x55:  # smalllong
        value = buf[pos + 1]
        return (value - 256 if value > 127 else value), pos + 2
    if code == 0x81:
        return _unpack_long(buf, pos + 1)[0], pos + 9
    if code == 0x82:
        return _unpack_double(buf, pos + 1)[0], pos + 9
    if code == 0x41:
        return True, pos + 1
    if code == 0x42:
        return False, pos + 1
    if code == 0x56:
        return bool(buf[pos + 1]), pos + 2
    if code in (0xB1, 0xB0, 0xB3):  # 32-bit lengths
        end = pos + 5 + _unpack_u32(buf, pos + 1)[0]
        raw = buf[pos + 5 : end]
        if code == 0xB0:
            return raw, end
        return (raw.decode() if code == 0xB1 else symbol(raw.decode("ascii"))), end
    raise _NotPlain


def _compound(buf: bytes, pos: int, map_codes: bool) -> tuple[int, int, int]:
    """``(count, first element, end)`` of the list (or map) whose constructor is at ``pos``."""
    code = buf[pos]
    if code == 0x45 and not map_codes:
        return 0, pos + 1, pos + 1
    if code == (0xC1 if map_codes else 0xC0):
        return buf[pos + 2], pos + 3, pos + 2 + buf[pos + 1]
    if code == (0xD1 if map_codes else 0xD0):
        size, count = struct.unpack_from(">II", buf, pos + 1)
        return count, pos + 9, pos + 5 + size
    raise _NotPlain


def _map(buf: bytes, pos: int) -> tuple[dict[Any, Any], int]:
    count, pos, end = _compound(buf, pos, map_codes=True)
    entries = {}
    for _ in range(count // 2):
        key, pos = _value(buf, pos)
        entries[key], pos = _value(buf, pos)
    if pos != end:
        raise _NotPlain
    return entries, end


def _properties(buf: bytes, pos: int, message: PlainMessage) -> int:
    count, pos, end = _compound(buf, pos, map_codes=False)
    for index in range(count):
        code = buf[pos]
        if code == 0x40:
            pos += 1
            continue
        if index in (0, 3, 5):  # message-id, subject, correlation-id: strings only (other id types: proton)
            if code not in (0xA1, 0xB1):
                raise _NotPlain
            value, pos = _value(buf, pos)
            if index == 0:
                message.id = value
            elif index == 3:
                message.subject = value
            else:
                message.correlation_id = value
        elif index == 6:  # content-type
            if code not in (0xA3, 0xB3):
                raise _NotPlain
            message.content_type, pos = _value(buf, pos)
        elif index == 9:  # creation-time
            if code != 0x83:
                raise _NotPlain
            message.creation_time = _unpack_long(buf, pos + 1)[0] / 1000.0
            pos += 9
        else:
            pos = value_end(buf, pos)  # user-id, to, reply-to, ...: not among the attributes read
    if pos != end:
        raise _NotPlain
    return end


def read_plain(buf: bytes) -> PlainMessage | None:
    """``buf`` (a whole encoded message) as a :class:`PlainMessage`, or None when it is not of the plain shape."""
    try:
        return _read(buf)
    except (_NotPlain, IndexError, ValueError, struct.error):  # ValueError: also UnicodeDecodeError
        return None


def _read(buf: bytes) -> PlainMessage | None:
    message = PlainMessage()
    pos, size, body_seen = 0, len(buf), False
    while pos < size:
        if buf[pos] != 0x00 or buf[pos + 1] != 0x53:  # a section: descriptor 0x00, smallulong code
            raise _NotPlain
        section, pos = buf[pos + 2], pos + 3
        if body_seen and section != _FOOTER:
            raise _NotPlain  # several body sections: proton's
        if section == _DATA:
            message.body, pos = _value(buf, pos)
            if not isinstance(message.body, bytes):
                raise _NotPlain
            body_seen = True
        elif section == _AMQP_VALUE:
            message.body, pos = _value(buf, pos)
            if not isinstance(message.body, (str, bytes)) or type(message.body) is symbol:
                raise _NotPlain  # other values: proton types them
            body_seen = True
        elif section == _PROPERTIES:
            pos = _properties(buf, pos, message)
        elif section == _APPLICATION_PROPERTIES:
            properties, pos = _map(buf, pos)
            if not all(type(k) is str for k in properties) or any(type(v) is symbol for v in properties.values()):
                raise _NotPlain
            message.properties = properties
        elif section == _MESSAGE_ANNOTATIONS:
            message.annotations, pos = _map(buf, pos)
        elif section == _HEADER:
            pos = _compound(buf, pos, map_codes=False)[2]  # its fields are not read
        elif section == _DELIVERY_ANNOTATIONS:
            pos = _compound(buf, pos, map_codes=True)[2]
        else:
            raise _NotPlain  # a footer, an amqp-sequence, or not a section
    if pos != size:
        raise _NotPlain
    return message
