"""The transport-neutral message model and its encoding.

relaybus puts oslo.messaging's message format on every transport, so one codec serves
them all: a request is ``{method, args, [namespace], [version], [_msg_id, _reply_q,
_timeout], _unique_id, _context_*}``, a reply ``{result, failure, ending, _msg_id,
_unique_id}``, a notification ``{message_id, publisher_id, event_type, priority, payload,
timestamp, _unique_id, _context_*}``; each is JSON text wrapped in the ``oslo.version``
"2.0" envelope (see docs/protocol and shared/wire/OSLO-RABBIT-WIRE.md).

Encoding happens before anything is sent, so a value JSON cannot carry fails at the
caller with ``TypeError``; decoding validates shape and raises :class:`MalformedMessage`.
"""

from __future__ import annotations

import collections
import datetime
import os
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from relaybus.errors import MalformedMessage

ENVELOPE_VERSION = "2.0"
ACCEPTED_ENVELOPE_VERSIONS = frozenset({"2.0", "2.0.0"})
CONTEXT_PREFIX = "_context_"
_CUT = len(CONTEXT_PREFIX)
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def encode_json(value: Any) -> bytes:
    """Encode plain JSON values to UTF-8 bytes.

    Raises:
        TypeError: a value JSON cannot carry (names its type).
    """
    try:
        return _encoder.encode(value)
    except (TypeError, OverflowError, ValueError) as exc:
        raise TypeError(f"value is not JSON-serialisable: {exc}") from None
    except RecursionError:
        raise TypeError("value is not JSON-serialisable: it is nested too deeply") from None


def decode_json(data: bytes | str) -> Any:
    """Decode JSON text; raises MalformedMessage on invalid input."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"message is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedMessage("message is nested too deeply to decode") from None


#: ready ids (32 random hex digits each), shared by every thread: ``list.pop`` is atomic
#: under the GIL, so no lock, and a pop is far cheaper than a thread-local's bookkeeping
_ids: list[str] = []
_STOCK = 4096  # bytes of randomness fetched at once: 256 ids


def _forget_ids() -> None:
    _ids.clear()  # a forked child must not hand out its parent's next ids


os.register_at_fork(after_in_child=_forget_ids)


def _refill() -> str:
    """Fill the stock from the OS's CSPRNG, 4 KiB at a time (``os.urandom`` is a system
    call that releases the GIL: one per id made every sending thread give the interpreter
    away, and wait to get it back, per message); returns one fresh id."""
    digits = os.urandom(_STOCK).hex()
    fresh = [digits[i:i + 32] for i in range(0, len(digits), 32)]
    mine = fresh.pop()
    _ids.extend(fresh)
    return mine


def new_unique_id() -> str:
    """A fresh id: 32 lower-case hex digits, 128 random bits from the OS's CSPRNG (as
    unique as a UUID4's hex, which oslo.messaging sends; far cheaper than
    ``uuid.uuid4().hex``)."""
    try:
        return _ids.pop()
    except IndexError:
        return _refill()


_hex32 = new_unique_id


_VARIANT = "89ab" * 4  # the RFC 4122 variant nibble for each value of a random nibble


def new_message_id() -> str:
    """A fresh random UUID4 in its canonical text form, as ``str(uuid.uuid4())`` gives
    (notification ``message_id``), without building a ``uuid.UUID``."""
    h = _hex32()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:]}"


_ENVELOPE_HEAD = b'{"oslo.version":"' + ENVELOPE_VERSION.encode() + b'","oslo.message":"'


def pack(message: Mapping[str, Any]) -> bytes:
    """Wrap a message object in the 2.0 envelope and encode it.

    The bytes are those of ``{"oslo.version": "2.0", "oslo.message": <JSON text>}``
    encoded compactly, put together without building that dict. The JSON text becomes a
    JSON string by escaping its backslashes and quotes alone: compact JSON from the
    encoder holds no control character (those inside its strings are escaped already)
    and is valid UTF-8, so these two are all the string encoder would escape (the bytes
    are the same as encoding the text as a string, without decoding it to one first).
    """
    try:
        inner = _encoder.encode(message)
    except Exception:  # noqa: BLE001 - encode_json says what is wrong, as TypeError
        inner = encode_json(message)  # raises for what failed here (or encodes it)
    return b"".join((_ENVELOPE_HEAD, inner.replace(b"\\", b"\\\\").replace(b'"', b'\\"'),
                     b'"}'))


class _Envelope(msgspec.Struct):
    """The 2.0 envelope, which nearly every body is: decoded straight into its two strings."""

    version: str = msgspec.field(name="oslo.version")
    message: str = msgspec.field(name="oslo.message")


_envelope_decoder = msgspec.json.Decoder(_Envelope)


def unpack(body: bytes | str) -> dict[str, Any]:
    """Decode a body: the 2.0 envelope, or a bare message object (legacy 1.0 form).

    Raises:
        MalformedMessage: not JSON, not an object, or an envelope of another version.
    """
    try:
        envelope = _envelope_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # anything else:
        return _unpack_any(body)  # the general path says what is wrong, if anything
    if envelope.version not in ACCEPTED_ENVELOPE_VERSIONS:
        raise MalformedMessage(f"unsupported envelope version {envelope.version!r}")
    inner = decode_json(envelope.message)
    if not isinstance(inner, dict):
        raise MalformedMessage("enveloped message must be a JSON object")
    return inner


def _unpack_any(body: bytes | str) -> dict[str, Any]:
    outer = decode_json(body)
    if not isinstance(outer, dict):
        raise MalformedMessage(f"message body must be a JSON object, got {type(outer).__name__}")
    if "oslo.version" not in outer or "oslo.message" not in outer:
        return outer
    version = outer["oslo.version"]
    if not isinstance(version, str) or version not in ACCEPTED_ENVELOPE_VERSIONS:
        raise MalformedMessage(f"unsupported envelope version {version!r}")
    inner_text = outer["oslo.message"]
    if not isinstance(inner_text, str):
        raise MalformedMessage("envelope member 'oslo.message' must be a string")
    inner = decode_json(inner_text)
    if not isinstance(inner, dict):
        raise MalformedMessage("enveloped message must be a JSON object")
    return inner


def flatten_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """``{k: v}`` -> ``{"_context_k": v}``, the way contexts travel in a message."""
    return {CONTEXT_PREFIX + str(k): v for k, v in context.items()}


def extract_context(message: Mapping[str, Any]) -> dict[str, Any]:
    """Collect the ``_context_*`` members of a message, without their prefix."""
    cut = len(CONTEXT_PREFIX)
    return {k[cut:]: v for k, v in message.items() if k.startswith(CONTEXT_PREFIX)}


def with_context(body: bytes, members: Mapping[str, Any]) -> bytes:
    """An encoded message with ``members`` set in its context (a redelivery's attempt count).

    Raises:
        MalformedMessage: ``body`` is not a message object.
    """
    message = unpack(body)
    message.update(flatten_context(members))
    message["_unique_id"] = new_unique_id()  # a new delivery, not a duplicate of the old
    return pack(message)


class Request(msgspec.Struct, frozen=True):
    """A decoded RPC request (call or cast)."""

    method: str
    args: dict[str, Any]
    context: dict[str, Any]
    namespace: str | None = None
    version: str | None = None
    msg_id: str | None = None
    reply_q: str | None = None
    timeout: float | None = None
    unique_id: str | None = None

    @property
    def expects_reply(self) -> bool:
        return self.msg_id is not None


def build_request(
    method: str,
    args: Mapping[str, Any],
    context: Mapping[str, Any],
    *,
    namespace: str | None = None,
    version: str | None = None,
    msg_id: str | None = None,
    reply_q: str | None = None,
    call_monitor_timeout: float | None = None,
) -> dict[str, Any]:
    """The request object in oslo.messaging's member order.

    ``msg_id`` marks a call: it brings ``_msg_id``, ``_reply_q`` and ``_timeout``.
    """
    message: dict[str, Any] = {"method": method, "args": dict(args)}
    if namespace is not None:
        message["namespace"] = namespace
    if version is not None:
        message["version"] = version
    if msg_id is not None:
        message["_msg_id"] = msg_id
        message["_reply_q"] = reply_q
        message["_timeout"] = call_monitor_timeout
    message["_unique_id"] = new_unique_id()
    if context:
        message.update(flatten_context(context))
    return message


_REQUEST_MEMBERS = frozenset({"method", "args", "namespace", "version", "_msg_id", "_reply_q",
                              "_timeout", "_unique_id"})


def parse_request(message: Mapping[str, Any]) -> Request:
    """Validate a decoded request object.

    Raises:
        MalformedMessage: a required member is missing or has the wrong type.
    """
    get = message.get
    method = get("method")
    if not isinstance(method, str) or not method:
        raise MalformedMessage("request has no 'method' string")
    args = get("args", {})
    if not isinstance(args, dict):
        raise MalformedMessage("request 'args' must be an object")
    namespace = get("namespace")
    version = get("version")
    if namespace is not None and not isinstance(namespace, str):
        raise MalformedMessage("request 'namespace' must be a string")
    if version is not None and not isinstance(version, str):
        raise MalformedMessage("request 'version' must be a string")
    msg_id = get("_msg_id")
    reply_q = get("_reply_q")
    if msg_id is not None and (not isinstance(msg_id, str) or not isinstance(reply_q, str)):
        raise MalformedMessage("a call needs '_msg_id' and '_reply_q' strings")
    timeout = get("_timeout")
    if timeout is not None and (isinstance(timeout, bool)
                                or not isinstance(timeout, (int, float))):
        raise MalformedMessage("request '_timeout' must be a number or null")
    unique_id = get("_unique_id")
    # no member beyond the request's own (checked at C speed): an empty context
    context = {} if message.keys() <= _REQUEST_MEMBERS else \
        {k[_CUT:]: v for k, v in message.items() if k.startswith(CONTEXT_PREFIX)}
    return Request(method, args, context, namespace, version, msg_id, reply_q, timeout,
                   unique_id if isinstance(unique_id, str) else None)



class Reply(msgspec.Struct, frozen=True):
    """A decoded reply: the final one (``ending``) or a call-monitor heartbeat."""

    msg_id: str
    result: Any = None
    failure: dict[str, Any] | None = None
    ending: bool = False
    #: the reply's own ``_unique_id`` (tells a repeated delivery from another answer)
    unique_id: str | None = None

    @property
    def is_heartbeat(self) -> bool:
        return not self.ending and self.failure is None and self.result is None


def build_reply(msg_id: str, result: Any = None, failure: Mapping[str, Any] | None = None,
                *, ending: bool = True) -> dict[str, Any]:
    """The reply object; ``failure`` is sent as JSON text, as oslo.messaging expects."""
    return {
        "result": result,
        "failure": encode_json(failure).decode("utf-8") if failure is not None else None,
        "ending": ending,
        "_msg_id": msg_id,
        "_unique_id": new_unique_id(),
    }


def parse_reply(message: Mapping[str, Any]) -> Reply:
    """Validate a decoded reply object; the failure text is decoded to a mapping."""
    msg_id = message.get("_msg_id")
    if not isinstance(msg_id, str):
        raise MalformedMessage("reply has no '_msg_id' string")
    failure = message.get("failure")
    if isinstance(failure, str):
        failure = decode_json(failure)
    if failure is not None and not isinstance(failure, dict):
        raise MalformedMessage("reply 'failure' must encode a JSON object")
    unique_id = message.get("_unique_id")
    return Reply(msg_id=msg_id, result=message.get("result"), failure=failure,
                 ending=bool(message.get("ending", False)),
                 unique_id=unique_id if isinstance(unique_id, str) else None)


def refusal(message: Mapping[str, Any],
            exc: MalformedMessage) -> tuple[str, dict[str, Any]] | None:
    """The reply telling the caller of a malformed call why, if the message says where.

    Returns ``(reply_q, reply object)``, or None when the message names no ``_msg_id`` and
    ``_reply_q`` to answer (then it is only logged).
    """
    msg_id, reply_q = message.get("_msg_id"), message.get("_reply_q")
    if not (isinstance(msg_id, str) and isinstance(reply_q, str)):
        return None
    text = f"malformed request: {exc}"
    failure = {"class": "MalformedMessage", "module": "relaybus.errors", "message": text,
               "tb": [], "args": [text], "kwargs": {}}
    return reply_q, build_reply(msg_id, failure=failure)


class Notification(msgspec.Struct, frozen=True):
    """A decoded notification."""

    message_id: str
    publisher_id: str | None
    event_type: str
    priority: str
    payload: Any
    timestamp: str
    context: dict[str, Any]
    unique_id: str | None = None

    @property
    def metadata(self) -> dict[str, str]:
        return {"message_id": self.message_id, "timestamp": self.timestamp}


_second: tuple[int, str] = (-1, "")  # the last second formatted, and its text


def format_timestamp(moment: datetime.datetime | None = None) -> str:
    """UTC time as oslo.messaging writes it: ``YYYY-MM-DD HH:MM:SS[.ffffff]``, no zone.

    The current time is what ``str(datetime.now(UTC))`` gives (the same clock, cut to the
    microsecond), with the date and time of day formatted once per second, not per call.
    """
    if moment is None:
        global _second
        seconds, micro = divmod(time.time_ns() // 1000, 1_000_000)
        second = _second
        if second[0] != seconds:  # tuples are swapped whole: safe across threads
            second = _second = (seconds, time.strftime("%Y-%m-%d %H:%M:%S",
                                                       time.gmtime(seconds)))
        return f"{second[1]}.{micro:06d}" if micro else second[1]
    return str(moment.astimezone(datetime.UTC).replace(tzinfo=None))


def build_notification(
    publisher_id: str | None,
    event_type: str,
    priority: str,
    payload: Any,
    context: Mapping[str, Any],
    *,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """The notification object (driver ``messagingv2``), priority upper-cased."""
    message = {
        "message_id": message_id or new_message_id(),
        "publisher_id": publisher_id,
        "event_type": event_type,
        "priority": priority.upper(),
        "payload": payload,
        "timestamp": timestamp or format_timestamp(),
        "_unique_id": new_unique_id(),
    }
    message.update(flatten_context(context))
    return message


def parse_notification(message: Mapping[str, Any]) -> Notification:
    """Validate a decoded notification object.

    Raises:
        MalformedMessage: a required member is missing, or the priority is unknown.
    """
    get = message.get
    event_type = get("event_type")
    if not isinstance(event_type, str):
        raise MalformedMessage("notification has no 'event_type' string")
    priority = get("priority")
    if not isinstance(priority, str) or priority.lower() not in PRIORITIES:
        raise MalformedMessage(f"notification has an unknown priority {priority!r}")
    publisher_id = get("publisher_id")
    if publisher_id is not None and not isinstance(publisher_id, str):
        raise MalformedMessage("notification 'publisher_id' must be a string or null")
    message_id = get("message_id")
    if not isinstance(message_id, str):
        raise MalformedMessage("notification has no 'message_id' string")
    timestamp = get("timestamp")
    unique_id = get("_unique_id")
    return Notification(
        message_id, publisher_id, event_type, priority.lower(), get("payload"),
        timestamp if isinstance(timestamp, str) else "",
        {k[_CUT:]: v for k, v in message.items() if k.startswith(CONTEXT_PREFIX)},
        unique_id if isinstance(unique_id, str) else None,
    )


class DuplicateFilter:
    """Remembers the last ``size`` ``_unique_id`` values seen, as oslo.messaging servers do."""

    def __init__(self, size: int = 16) -> None:
        self._order: collections.deque[str] = collections.deque()
        self._seen: set[str] = set()
        self._size = size

    def is_duplicate(self, unique_id: str | None) -> bool:
        """Record ``unique_id``; True when it was already among the recent ones."""
        if unique_id is None:
            return False
        if unique_id in self._seen:
            return True
        self._order.append(unique_id)
        self._seen.add(unique_id)
        if len(self._order) > self._size:
            self._seen.discard(self._order.popleft())
        return False
