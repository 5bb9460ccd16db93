"""Dead letters at rest: list, show, replay and purge what a dead-letter topic holds.

Used by ``relaybus dlq``; works on every transport whose driver can show stored
notifications (:meth:`~relaybus.transport.base.Driver.visit_notifications`).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Collection
from typing import Any

from relaybus.delivery.letters import DEAD_LETTER_KEY, REPLAY_KEY, DeadLetterReason, parse_time
from relaybus.errors import MalformedMessage
from relaybus.message import (
    Request,
    build_notification,
    parse_notification,
)
from relaybus.target import Target
from relaybus.transport.base import Driver


class ReplayError(ValueError):
    """A letter cannot be replayed as it is (it says no single topic to go back to)."""


@dataclasses.dataclass(frozen=True)
class Letter:
    """A dead letter as stored.

    Attributes:
        id: its message id (the one ``relaybus dlq`` shows).
        priority: the priority it is stored under.
        event_type: the notification's event type, or the cast's method.
        publisher_id: who sent it.
        payload: a notification's payload; a cast's ``{method, args, namespace, version}``.
        context: its context, reason included.
        timestamp: when it was sent (oslo's format, UTC).
        reason: why it died (None for a message that carries no reason).
    """

    id: str
    priority: str
    event_type: str
    publisher_id: str | None
    payload: Any
    context: dict[str, Any]
    timestamp: str
    reason: DeadLetterReason | None

    @classmethod
    def from_message(cls, priority: str, message: dict[str, Any]) -> Letter | None:
        """The letter a stored notification object is, or None when it is not one."""
        try:
            n = parse_notification(message)
        except MalformedMessage:
            return None
        return cls(id=n.message_id, priority=priority, event_type=n.event_type,
                   publisher_id=n.publisher_id, payload=n.payload, context=n.context,
                   timestamp=n.timestamp, reason=DeadLetterReason.from_context(n.context))

    def died_at(self) -> datetime.datetime | None:
        """When it was given up on (its last failure), if it says."""
        if self.reason is None:
            return None
        try:
            return parse_time(self.reason.last_failure)
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["reason"] = self.reason.to_json() if self.reason else None
        return data


def _original_context(letter: Letter) -> dict[str, Any]:
    context = {k: v for k, v in letter.context.items() if k not in (DEAD_LETTER_KEY, REPLAY_KEY)}
    replays = letter.reason.replays if letter.reason else 0
    context[REPLAY_KEY] = {"from": letter.id, "replays": replays + 1}
    return context


def _destination(letter: Letter, to: str | None) -> Target:
    if to is not None:
        return Target(topic=to)
    reason = letter.reason
    if reason is None or not reason.topic or "," in reason.topic:
        raise ReplayError(f"letter {letter.id} does not say one topic it came from"
                          + (f" ({reason.topic})" if reason and reason.topic else "")
                          + ": give --to TOPIC")
    return Target(topic=reason.topic, exchange=reason.exchange or None)


async def replay_letter(driver: Driver, letter: Letter, to: str | None = None) -> None:
    """Send a letter back through the normal path (a cast again, or a notification).

    It goes with a new message id (JetStream would drop a copy of the old one as a
    duplicate) and ``relaybus_replayed`` in its context, without its reason.

    Raises:
        ReplayError: no single original topic and no ``to``.
        MessageUndeliverable: a cast nobody listens for (the letter stays).
        TransportError: the broker did not take it.
    """
    target = _destination(letter, to)
    context = _original_context(letter)
    if letter.reason is not None and letter.reason.kind == "cast":
        payload = letter.payload if isinstance(letter.payload, dict) else {}
        args = payload.get("args")
        request = Request(method=str(payload.get("method") or letter.event_type),
                          args=args if isinstance(args, dict) else {}, context=context,
                          namespace=payload.get("namespace"), version=payload.get("version"))
        await driver.send(target, request, wait_for_reply=False)
        return
    message = build_notification(letter.publisher_id, letter.event_type, letter.priority,
                                 letter.payload, context)
    await driver.send_notification(target, message, letter.priority)


class DeadLetterStore:
    """The letters a dead-letter topic holds, on one bus's transport.

    Args:
        driver: the transport (``bus.driver``).
        topic: the dead-letter topic.
    """

    def __init__(self, driver: Driver, topic: str) -> None:
        self.driver = driver
        self.target = Target(topic=topic)

    async def letters(self) -> list[Letter]:
        """Every letter stored, oldest first (nothing is removed)."""
        found: list[Letter] = []

        async def keep(priority: str, message: dict[str, Any]) -> bool:
            letter = Letter.from_message(priority, message)
            if letter is not None:
                found.append(letter)
            return False

        await self.driver.visit_notifications(self.target, keep)
        return found

    async def find(self, letter_id: str) -> Letter | None:
        """The letter with that id, or None."""
        return next((letter for letter in await self.letters() if letter.id == letter_id), None)

    async def take(self, choose: Callable[[Letter], bool],
                   act: Callable[[Letter], Any] | None = None) -> tuple[list[Letter],
                                                                       list[tuple[Letter,
                                                                                  Exception]]]:
        """Remove the letters ``choose`` picks, each only after ``await act(letter)``
        succeeded; one whose act failed stays. Returns (removed, failed with why)."""
        removed: list[Letter] = []
        failed: list[tuple[Letter, Exception]] = []

        async def visit(priority: str, message: dict[str, Any]) -> bool:
            letter = Letter.from_message(priority, message)
            if letter is None or not choose(letter):
                return False
            if act is not None:
                try:
                    await act(letter)
                except Exception as exc:  # noqa: BLE001 - reported; the letter stays
                    failed.append((letter, exc))
                    return False
            removed.append(letter)
            return True

        await self.driver.visit_notifications(self.target, visit)
        return removed, failed

    async def replay(self, ids: Collection[str] | None, to: str | None = None,
                     progress: Callable[[Letter], None] | None = None) -> tuple[
                         list[Letter], list[tuple[Letter, Exception]]]:
        """Replay the letters with those ids (None: all); each is removed only once the
        transport took its replay."""
        if to is not None:
            Target(topic=to)  # a bad name fails before anything moves

        async def act(letter: Letter) -> None:
            await replay_letter(self.driver, letter, to)
            if progress is not None:
                progress(letter)

        return await self.take(lambda letter: ids is None or letter.id in ids, act)

    async def purge(self, older_than: datetime.timedelta,
                    now: datetime.datetime | None = None) -> list[Letter]:
        """Remove the letters that died more than ``older_than`` ago (letters without a
        reason by their timestamp)."""
        cutoff = (now or datetime.datetime.now(datetime.UTC)) - older_than

        def old(letter: Letter) -> bool:
            died = letter.died_at() or _sent_at(letter)
            return died is not None and died < cutoff

        removed, _ = await self.take(old)
        return removed


def _sent_at(letter: Letter) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(letter.timestamp).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


__all__ = ["DeadLetterStore", "Letter", "ReplayError", "replay_letter"]
