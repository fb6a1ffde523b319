"""An encoded AMQP message's sections, read without decoding them: guards, the body as sent, the redelivery digest.

These work on the bytes of a delivery, so they never raise on hostile input the way a full
decode can (proton reads some malformed input as an empty message, recurses on deep
nesting, and refuses strings that are not UTF-8).
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

from proton import Message


class SectionCode(IntEnum):
    """The descriptor codes of a message's sections (AMQP 1.0 part 3.2), in the order a message holds them.

    The one table of them: :mod:`~amqp_message_model.decoding` and
    :mod:`~amqp_message_model.encoding` take their codes and byte prefixes from it. Code on a
    per-message path copies the members it compares into module-level ints once, at import.
    """

    HEADER = 0x70
    DELIVERY_ANNOTATIONS = 0x71
    MESSAGE_ANNOTATIONS = 0x72
    PROPERTIES = 0x73
    APPLICATION_PROPERTIES = 0x74
    DATA = 0x75
    AMQP_SEQUENCE = 0x76
    AMQP_VALUE = 0x77
    FOOTER = 0x78


# What a broker may change on redelivery (the bare message digest leaves them out), and the body.
_BROKER_SECTIONS = frozenset(
    int(c) for c in (SectionCode.HEADER, SectionCode.DELIVERY_ANNOTATIONS, SectionCode.MESSAGE_ANNOTATIONS)
)
_BODY_SECTIONS = frozenset(int(c) for c in (SectionCode.DATA, SectionCode.AMQP_SEQUENCE, SectionCode.AMQP_VALUE))
_DATA, _VALUE = int(SectionCode.DATA), int(SectionCode.AMQP_VALUE)
_FIRST_SECTION, _LAST_SECTION = int(SectionCode.HEADER), int(SectionCode.FOOTER)
_FIXED_WIDTH = {0x4: 0, 0x5: 1, 0x6: 2, 0x7: 4, 0x8: 8, 0x9: 16}  # by the constructor's high nibble (part 1.6)


def value_end(buf: bytes, pos: int, depth: int = 0) -> int:
    """Where the AMQP-encoded value starting at ``pos`` ends, from its constructor alone (no decoding)."""
    code = buf[pos]
    if code == 0x00:  # described: a descriptor, then the value
        if depth >= 4:
            raise ValueError("descriptors nested too deep")
        return value_end(buf, value_end(buf, pos + 1, depth + 1), depth + 1)
    nibble = code >> 4
    if nibble in _FIXED_WIDTH:
        end = pos + 1 + _FIXED_WIDTH[nibble]
    elif nibble in (0xA, 0xC, 0xE):
        end = pos + 2 + buf[pos + 1]
    elif nibble in (0xB, 0xD, 0xF):
        end = pos + 5 + int.from_bytes(buf[pos + 1 : pos + 5], "big")
    else:
        raise ValueError(f"no AMQP type has constructor 0x{code:02x}")
    if end > len(buf):
        raise ValueError("value cut short")
    return end


def amqp_sections(encoded: bytes) -> list[tuple[int, int, int]]:
    """An encoded message's sections as ``(section code, value start, value end)``, found without decoding them.

    Raises ``ValueError`` if ``encoded`` is not a sequence of described sections.
    """
    sections = []
    pos = 0
    try:
        while pos < len(encoded):
            if encoded[pos] != 0x00:
                raise ValueError(f"no section at byte {pos}")
            start = value_end(encoded, pos + 1)
            descriptor = encoded[pos + 1 : start]
            if descriptor[0] == 0x53:
                code = descriptor[1]
            elif descriptor[0] == 0x80:
                code = int.from_bytes(descriptor[1:9], "big")
            else:
                code = -1  # a symbolic descriptor
            end = value_end(encoded, start)
            sections.append((code, start, end))
            pos = end
    except IndexError:
        raise ValueError("message cut short") from None
    return sections


def body_as_sent(encoded: bytes) -> bytes | None:
    """The ``body`` column without converting the body: data sections' bytes, an amqp-value
    string's bytes (unchecked), else the AMQP encoding of the body section values; the whole
    input if it is not an AMQP message."""
    try:
        body = [(code, start, end) for code, start, end in amqp_sections(encoded) if code in _BODY_SECTIONS]
    except ValueError:
        return encoded
    if not body or (len(body) == 1 and body[0][0] == _VALUE and encoded[body[0][1]] == 0x40):
        return None  # no body, or an amqp-value null

    def content(start: int, end: int) -> bytes:  # of a binary or string value
        return encoded[start + (2 if encoded[start] >> 4 == 0xA else 5) : end]

    if all(code == _DATA and encoded[start] in (0xA0, 0xB0) for code, start, _ in body):
        return b"".join(content(start, end) for _, start, end in body)
    if len(body) == 1 and body[0][0] == _VALUE and encoded[body[0][1]] in (0xA1, 0xB1):
        return content(body[0][1], body[0][2])
    return b"".join(encoded[start:end] for _, start, end in body)


def decode_message(encoded: bytes) -> Message:
    message = Message()
    message.decode(encoded)
    return message


def bare_message_digest(encoded: bytes) -> bytes:
    """A digest of what the sender sent, ignoring what a broker changes on redelivery.

    The header (delivery count, first-acquirer, ...) and the delivery and message
    annotations are left out, so a redelivered message has the digest of its first delivery.
    Never raises: a message proton cannot decode is digested from its bytes, with the same
    sections left out.
    """
    try:
        amqp_sections(encoded)  # proton takes some malformed input for an empty message
        message = decode_message(encoded)
        message.delivery_count = 0
        message.first_acquirer = False
        message.durable = False
        message.priority = 4
        message.ttl = 0
        message.instructions = None
        message.annotations = None
        bare = bytes(message.encode())
    except Exception:  # noqa: BLE001 - RecursionError, UnicodeDecodeError, proton's own errors: see the module docstring
        try:
            bare = b"".join(encoded[start:end] for code, start, end in amqp_sections(encoded) if code not in _BROKER_SECTIONS)
        except ValueError:
            bare = encoded
        bare = b"raw:" + bare
    return hashlib.blake2b(bare, digest_size=16).digest()


def is_encoded_message(value: bytes | None) -> bool:
    """Whether ``value`` starts like an encoded AMQP message (a described section, header to footer).

    proton decodes garbage into an empty message without complaint; check with this first.
    """
    return (
        value is not None
        and len(value) >= 3
        and value[0] == 0x00
        and value[1] == 0x53
        and _FIRST_SECTION <= value[2] <= _LAST_SECTION
    )
