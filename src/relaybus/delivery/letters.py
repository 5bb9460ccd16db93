"""Dead letters: why a message died, carried in its context, and how it is sent.

A dead letter is a notification on the policy's dead-letter topic. Its context keeps the
original context and adds ``relaybus_dead_letter``: a :class:`DeadLetterReason` as a JSON
object (see docs/protocol/dead-letters.md). A dead notification keeps its publisher,
event type, priority, payload and message id; a dead cast becomes a notification of
priority ``error`` whose event type is the method and whose payload holds
``method``, ``args``, ``namespace`` and ``version``, so it can be cast again.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Mapping
from typing import Any

from relaybus import telemetry
from relaybus.message import Notification, Request, build_notification
from relaybus.target import Target
from relaybus.transport.base import Driver

LOG = logging.getLogger(__name__)

DEAD_LETTER_KEY = "relaybus_dead_letter"
#: context member of a replayed message: ``{"from": <dead letter's message id>, "replays": n}``
REPLAY_KEY = "relaybus_replayed"
CAST_PRIORITY = "error"


def utc_now() -> str:
    """The time now as ISO 8601 UTC with microseconds (``2026-01-02T03:04:05.123456Z``)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime.datetime:
    """The moment an ISO 8601 UTC text written by :func:`utc_now` names."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class DeadLetterReason:
    """Why a message was given up on.

    Attributes:
        kind: ``notification`` or ``cast``.
        error_type: the class name of the last exception.
        error_message: its message.
        attempts: how many times the handler ran.
        first_failure, last_failure: ISO 8601 UTC times of the first and last failure.
        topic: the topic the message was consumed from.
        exchange: its exchange (the control exchange when the target named none).
        message_id: the message's id (a notification's ``message_id``, a cast's
            ``_unique_id``).
        handler: the endpoint method that failed.
        permanent: the error was one of the policy's permanent ones (no retry).
        pool: the listener pool (notifications), else None.
        priority: the original priority (notifications), else ``error``.
        replays: how many times the message had been replayed from a dead-letter topic.
    """

    kind: str
    error_type: str
    error_message: str
    attempts: int
    first_failure: str
    last_failure: str
    topic: str
    exchange: str
    message_id: str
    handler: str
    permanent: bool = False
    pool: str | None = None
    priority: str = CAST_PRIORITY
    replays: int = 0

    def to_json(self) -> dict[str, Any]:
        """The reason as it travels (with ``error``: ``"Type: message"``, for log lines)."""
        data = dataclasses.asdict(self)
        data["error"] = f"{self.error_type}: {self.error_message}"
        return data

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> DeadLetterReason | None:
        """The reason a dead letter's context carries, or None when it carries none."""
        data = context.get(DEAD_LETTER_KEY)
        if not isinstance(data, Mapping):
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError:  # a member missing: not one of ours
            return None


def replays_of(context: Mapping[str, Any]) -> int:
    """How many times a message with this context was replayed from a dead-letter topic."""
    replay = context.get(REPLAY_KEY)
    count = replay.get("replays", 0) if isinstance(replay, Mapping) else 0
    return count if isinstance(count, int) else 0


def notification_letter(n: Notification, reason: DeadLetterReason) -> dict[str, Any]:
    """The dead letter of a notification: itself, with the reason in its context."""
    context = {**n.context, DEAD_LETTER_KEY: reason.to_json()}
    return build_notification(n.publisher_id, n.event_type, n.priority, n.payload, context,
                              message_id=n.message_id, timestamp=n.timestamp)


def cast_letter(request: Request, target: Target, reason: DeadLetterReason) -> dict[str, Any]:
    """The dead letter of a cast: a notification that holds what to cast again."""
    context = {**request.context, DEAD_LETTER_KEY: reason.to_json()}
    payload = {"method": request.method, "args": request.args,
               "namespace": request.namespace, "version": request.version}
    return build_notification(f"relaybus.rpc.{target.topic}", request.method, CAST_PRIORITY,
                              payload, context, message_id=reason.message_id)


async def send_letter(driver: Driver, topic: str, letter: dict[str, Any],
                      reason: DeadLetterReason) -> bool:
    """Publish a dead letter to ``topic``; False (logged) when the transport refused it."""
    priority = str(letter["priority"]).lower()
    try:
        await driver.send_notification(Target(topic=topic), letter, priority)
    except Exception:
        LOG.exception("could not dead-letter %s %s to %s", reason.kind, reason.message_id,
                      topic, extra={"message_id": reason.message_id})
        return False
    telemetry.count_delivery("dead_letters", reason.topic, reason.error_type)
    return True
