"""Packing and parsing AMQP 0-9-1 frames.

The frames every message crosses (``Basic.Publish`` with its header and body,
``Basic.Deliver``, ``Basic.Ack``) are packed and parsed here by hand with ``struct``:
they are a handful of fixed fields, and pamqp's generic, attribute-by-attribute codec
costs more than the rest of a round trip. Everything else (handshake, declarations,
closes) goes through pamqp, which aiormq also uses.
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import commands
from pamqp import frame as pamqp_frame
from pamqp.base import Frame
from pamqp.header import ContentHeader

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_END_BYTE = b"\xce"
FRAME_OVERHEAD = 8  # 7-byte frame header + frame-end octet

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"

FRAME_HEAD = struct.Struct(">BHI")
_INDEX = struct.Struct(">I")
_PUBLISH_HEAD = struct.Struct(">IH")  # method index, deprecated ticket
_HEADER_HEAD = struct.Struct(">HHQ")  # class id, weight, body size
_ACK = struct.Struct(">IQB")  # method index, delivery tag, flag bits
_U64 = struct.Struct(">Q")

BASIC_PUBLISH = commands.Basic.Publish.index
BASIC_DELIVER = commands.Basic.Deliver.index
BASIC_RETURN = commands.Basic.Return.index
BASIC_ACK = commands.Basic.Ack.index
BASIC_NACK = commands.Basic.Nack.index
BASIC_REJECT = commands.Basic.Reject.index
BASIC_CLASS = 60

_METHOD_CACHE_LIMIT = 4096
_method_cache: dict[tuple[str, str, bool], bytes] = {}


def shortstr(text: str) -> bytes:
    """An AMQP short string: length octet, then at most 255 bytes of UTF-8."""
    data = text.encode("utf-8")
    if len(data) > 255:
        raise ValueError(f"AMQP short string over 255 bytes: {text[:40]!r}...")
    return bytes((len(data),)) + data


def message_properties(*, content_type: str = "application/json",
                       content_encoding: str = "utf-8", delivery_mode: int = 2,
                       priority: int = 0, expiration: str | None = None) -> bytes:
    """The property flags and values of a content header, with an empty ``headers`` table.

    These are exactly the properties oslo.messaging puts on every message (wire §3).
    """
    flags = 0x8000 | 0x4000 | 0x2000 | 0x1000 | 0x0800  # type, encoding, headers, mode, prio
    parts = [b"", shortstr(content_type), shortstr(content_encoding),
             b"\x00\x00\x00\x00", bytes((delivery_mode,)), bytes((priority,))]
    if expiration is not None:
        flags |= 0x0100
        parts.append(shortstr(expiration))
    parts[0] = struct.pack(">H", flags)
    return b"".join(parts)


def _publish_method(exchange: str, routing_key: str, mandatory: bool) -> bytes:
    key = (exchange, routing_key, mandatory)
    payload = _method_cache.get(key)
    if payload is None:
        payload = b"".join((_PUBLISH_HEAD.pack(BASIC_PUBLISH, 0), shortstr(exchange),
                            shortstr(routing_key), b"\x01" if mandatory else b"\x00"))
        if len(_method_cache) >= _METHOD_CACHE_LIMIT:
            _method_cache.clear()
        _method_cache[key] = payload
    return payload


def pack_publish(channel: int, exchange: str, routing_key: str, body: bytes,
                 properties: bytes, *, mandatory: bool, frame_max: int) -> bytes:
    """The method, header and body frames of one ``Basic.Publish``, as one bytes object."""
    method = _publish_method(exchange, routing_key, mandatory)
    size = len(body)
    parts: list[bytes | memoryview] = [
        FRAME_HEAD.pack(FRAME_METHOD, channel, len(method)), method, FRAME_END_BYTE,
        FRAME_HEAD.pack(FRAME_HEADER, channel, 12 + len(properties)),
        _HEADER_HEAD.pack(BASIC_CLASS, 0, size), properties, FRAME_END_BYTE]
    chunk = frame_max - FRAME_OVERHEAD
    if size <= chunk:
        if size:
            parts += (FRAME_HEAD.pack(FRAME_BODY, channel, size), body, FRAME_END_BYTE)
    else:
        view = memoryview(body)
        for start in range(0, size, chunk):
            piece = view[start:start + chunk]
            parts += (FRAME_HEAD.pack(FRAME_BODY, channel, len(piece)), piece, FRAME_END_BYTE)
    return b"".join(parts)


def _pack_method_payload(channel: int, payload: bytes) -> bytes:
    return FRAME_HEAD.pack(FRAME_METHOD, channel, len(payload)) + payload + FRAME_END_BYTE


def pack_ack(channel: int, delivery_tag: int, multiple: bool) -> bytes:
    """A ``Basic.Ack`` frame."""
    return _pack_method_payload(channel, _ACK.pack(BASIC_ACK, delivery_tag, 1 if multiple else 0))


def pack_nack(channel: int, delivery_tag: int, *, multiple: bool, requeue: bool) -> bytes:
    """A ``Basic.Nack`` frame (RabbitMQ extension: reject, optionally several at once)."""
    bits = (1 if multiple else 0) | (2 if requeue else 0)
    return _pack_method_payload(channel, _ACK.pack(BASIC_NACK, delivery_tag, bits))


def pack_method(channel: int, method: Frame) -> bytes:
    """Any other method frame, through pamqp."""
    return pamqp_frame.marshal(method, channel)


def method_index(payload: bytes) -> int:
    """The class and method ids of a method frame payload, as one integer."""
    return int(_INDEX.unpack_from(payload)[0])


def unpack_method(payload: bytes) -> Any:
    """Decode a method frame payload with pamqp.

    Raises:
        ValueError: an unknown method or a malformed payload.
    """
    index = method_index(payload)
    try:
        method: Frame = commands.INDEX_MAPPING[index]()
    except KeyError:
        raise ValueError(f"unknown AMQP method 0x{index:08x}") from None
    try:
        method.unmarshal(payload[4:])
    except (struct.error, ValueError) as exc:
        raise ValueError(f"malformed {method.name} frame: {exc}") from None
    return method


def _shortstr_at(payload: bytes, pos: int) -> tuple[str, int]:
    size = payload[pos]
    end = pos + 1 + size
    return payload[pos + 1:end].decode("utf-8"), end


def unpack_deliver(payload: bytes) -> tuple[str, int, bool, str, str]:
    """``Basic.Deliver``: (consumer_tag, delivery_tag, redelivered, exchange, routing_key)."""
    consumer_tag, pos = _shortstr_at(payload, 4)
    delivery_tag = _U64.unpack_from(payload, pos)[0]
    redelivered = bool(payload[pos + 8] & 1)
    exchange, pos = _shortstr_at(payload, pos + 9)
    routing_key, _ = _shortstr_at(payload, pos)
    return consumer_tag, delivery_tag, redelivered, exchange, routing_key


def unpack_ack(payload: bytes) -> tuple[int, bool, bool]:
    """``Basic.Ack`` or ``Basic.Nack``: (delivery_tag, multiple, requeue)."""
    _, tag, bits = _ACK.unpack_from(payload)
    return tag, bool(bits & 1), bool(bits & 2)


def header_body_size(payload: bytes) -> int:
    """The body size announced by a content header frame payload."""
    return int(_U64.unpack_from(payload, 4)[0])


def headers_of(header_payload: bytes) -> dict[str, Any]:
    """The ``headers`` table of a content header frame payload (pamqp parses it; cold path)."""
    content = ContentHeader()
    content.unmarshal(header_payload)
    return dict(content.properties.headers or {})
