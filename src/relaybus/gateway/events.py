"""Notifications as CloudEvents 1.0 (structured JSON mode), encoded once per event.

One notification becomes one event::

    {"specversion": "1.0", "id": <message_id>, "source": <publisher_id, URI-encoded>,
     "type": <event_type>, "time": <RFC 3339>, "datacontenttype": "application/json",
     "priority": "info", "busexchange": "nova", "bustopic": "notifications",
     "firehosetopic": "nova/compute.host1/compute/instance/create/end", "data": <payload>}

The JSON is encoded once, then reused for the replay buffer, MQTT, every WebSocket and every
SSE client. docs/protocol/cloudevents.md is the reference.
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import msgspec

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
EXTENSIONS = ("priority", "busexchange", "bustopic", "firehosetopic")
UNKNOWN_SOURCE = "unknown"

_ENCODER = msgspec.json.Encoder()
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NOT_URI = re.compile(r"%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")


def encode(value: Any) -> bytes:
    """Compact JSON."""
    return _ENCODER.encode(value)


def rfc3339(timestamp: str | None, *, default: datetime.datetime | None = None) -> str:
    """oslo.messaging's ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (UTC, no zone) as RFC 3339.

    An empty or unreadable timestamp gives ``default`` (else now), so every event has a time.
    """
    moment = None
    if timestamp:
        try:
            moment = datetime.datetime.fromisoformat(timestamp)
        except ValueError:
            moment = None
    if moment is None:
        moment = default or datetime.datetime.now(datetime.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    moment = moment.astimezone(datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def safe_id(message_id: str) -> str:
    """The id made safe to travel in an SSE ``id:`` line (control characters replaced)."""
    return _CONTROL.sub("_", message_id) if _CONTROL.search(message_id) else message_id


def uri_reference(text: str) -> str:
    """``text`` as a URI-reference (RFC 3986), as CloudEvents requires of ``source``.

    Each character a URI may not hold (a space, ``"``, non-ASCII...) is percent-encoded as
    UTF-8, and so is a ``%`` that does not start an encoding; what is valid is kept as it
    is, so an already-encoded source is not encoded twice.
    """
    return _NOT_URI.sub(lambda m: urllib.parse.quote(m.group(), safe=""), text)


def cloudevent(*, message_id: str, publisher_id: str | None, event_type: str, priority: str,
               timestamp: str | None, payload: Any, exchange: str, bustopic: str,
               topic: str) -> dict[str, Any]:
    """The CloudEvent (as a dict) for one notification."""
    return {
        "specversion": SPECVERSION,
        "id": safe_id(message_id),
        "source": uri_reference(publisher_id or UNKNOWN_SOURCE),
        "type": event_type,
        "time": rfc3339(timestamp),
        "datacontenttype": CONTENT_TYPE,
        "priority": priority,
        "busexchange": exchange,
        "bustopic": bustopic,
        "firehosetopic": topic,
        "data": payload,
    }


@dataclass(slots=True, eq=False)
class Event:
    """One event as the gateway holds it: its place in the stream and its encodings.

    Attributes:
        seq: its position in this gateway's stream (1, 2, ...; never reused).
        id: the CloudEvent id (the notification's message_id).
        topic: the hierarchical topic; levels: the same, split on ``/``.
        type: the CloudEvent type (event_type), for statistics.
        json: the CloudEvent, encoded.
        offset: its offset in the broker's replay log (None: the replay is in-process).
        cursor: what a client resumes after (SSE ``id:``): the offset when there is one
            (the same on every gateway), else the id.
    """

    seq: int
    id: str
    topic: str
    type: str
    json: bytes
    offset: int | None = None
    cursor: str = field(init=False)
    levels: tuple[str, ...] = field(init=False)
    _ws: str | None = field(default=None, init=False)
    _sse: bytes | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.levels = tuple(self.topic.split("/"))
        self.cursor = self.id if self.offset is None else str(self.offset)

    @property
    def size(self) -> int:
        """Bytes the event costs in the replay buffer."""
        return len(self.json)

    @property
    def ws_frame(self) -> str:
        """The WebSocket text frame: ``{"kind":"event","event":<CloudEvent>}``."""
        if self._ws is None:
            self._ws = '{"kind":"event","event":' + self.json.decode("utf-8") + "}"
        return self._ws

    @property
    def sse_frame(self) -> bytes:
        """The SSE message: ``id:`` the event id, ``data:`` the CloudEvent (one line)."""
        if self._sse is None:
            self._sse = b"id: " + self.cursor.encode("utf-8") + b"\ndata: " + self.json + b"\n\n"
        return self._sse
