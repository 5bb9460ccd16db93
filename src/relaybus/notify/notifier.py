"""The Notifier: emits notifications, one method per priority.

Each notification is sent once per topic, with one ``message_id`` for all of them, in
oslo.messaging's format. The notifier's ``driver`` chooses where it goes: ``messaging``
(the bus; ``messagingv2`` is accepted as a synonym), ``log`` (Python logging), ``noop``, or
``capture`` (kept in :attr:`Notifier.captured`, for users' own tests). Several can be given.

Given ``emits`` (the shape of :attr:`relaybus.Service.emits`), a notifier holds the
payloads of the declared event types to their contract before sending: a payload is
converted to its declared type (a dict, or already an instance) and sent in its JSON form;
one that does not fit, or a declared event sent at another priority, raises
InvalidPayload and nothing is sent. Undeclared event types go out unchecked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from relaybus import telemetry
from relaybus.conversion import convert, explain, to_json_value
from relaybus.delivery.delay import check_delay, check_transport_can_delay, count_delayed
from relaybus.errors import ConnectionFailure, InvalidPayload
from relaybus.message import build_notification, encode_json
from relaybus.middleware import SEND_NOTIFICATION, NotificationInfo, Pipeline, run
from relaybus.serializer import JsonPayloadSerializer, Serializer
from relaybus.target import Target
from relaybus.transport.base import Driver

LOG = logging.getLogger(__name__)

NOTIFIER_DRIVERS = ("messaging", "messagingv2", "log", "noop", "capture")
_LOG_LEVELS = {"audit": logging.INFO, "debug": logging.DEBUG, "info": logging.INFO,
               "warn": logging.WARNING, "error": logging.ERROR,
               "critical": logging.CRITICAL, "sample": logging.INFO}
_RETRY_BACKOFF = (0.1, 0.5, 1.0, 2.0)


def _drivers(driver: str | Sequence[str]) -> tuple[str, ...]:
    names = (driver,) if isinstance(driver, str) else tuple(driver)
    for name in names:
        if name not in NOTIFIER_DRIVERS:
            raise ValueError(f"unknown notifier driver {name!r}; choose from "
                             f"{', '.join(NOTIFIER_DRIVERS)}")
    return names


def _contracts(emits: Mapping[str, Any] | None) -> dict[str, tuple[Any, str | None]]:
    """``{event_type: (payload type, priority or None)}`` from a Service-style ``emits``."""
    contracts: dict[str, tuple[Any, str | None]] = {}
    for event_type, declared in (emits or {}).items():
        if isinstance(declared, tuple):
            if len(declared) != 2 or declared[1] not in _LOG_LEVELS:
                raise ValueError(f"emits[{event_type!r}] must be a type or (type, priority) "
                                 f"with a priority among {', '.join(_LOG_LEVELS)}")
            contracts[event_type] = (declared[0], declared[1])
        else:
            contracts[event_type] = (declared, None)
    return contracts


class Notifier:
    """Sends notifications as ``publisher_id`` to ``topics``.

    Args:
        driver: the bus's transport.
        publisher_id: who sends, e.g. ``compute.host1``.
        topics: notification topics; each notification goes to every one.
        notifier_driver: ``messaging``, ``log``, ``noop`` or ``capture`` (or a list).
        serializer: converts payloads and contexts (default: JSON-safe conversion).
        retry: on a lost connection, how many more times to try sending (None: none).
        emits: payload types by event type, ``{"event.type": PayloadType}`` or
            ``{"event.type": (PayloadType, "priority")}``, as ``Service.emits``.
        delay: notifications reach their listeners this many seconds after they are sent
            (see docs/delivery.md for each transport's precision and longest delay).
        pipeline: the bus's middleware (default: telemetry only).
    """

    def __init__(self, driver: Driver, publisher_id: str | None, *,
                 topics: Sequence[str] = ("notifications",),
                 notifier_driver: str | Sequence[str] = "messaging",
                 serializer: Serializer | None = None, retry: int | None = None,
                 emits: Mapping[str, Any] | None = None,
                 delay: float | None = None, pipeline: Pipeline | None = None) -> None:
        if isinstance(topics, str):
            topics = (topics,)
        if not topics:
            raise ValueError("a notifier needs at least one topic")
        if publisher_id is not None and not isinstance(publisher_id, str):
            raise TypeError(f"publisher_id must be a string, got {publisher_id!r}")
        if retry is not None and (not isinstance(retry, int) or retry < 0):
            raise ValueError(f"retry must be None or a whole number >= 0, got {retry!r}")
        self.publisher_id = publisher_id
        self.targets = tuple(Target(topic=t) for t in topics)
        self.driver_names = _drivers(notifier_driver)
        self.serializer = serializer or JsonPayloadSerializer()
        self.retry = retry
        self.captured: list[dict[str, Any]] = []
        self.emits = dict(emits or {})
        self._contracts = _contracts(self.emits)
        self.delay = check_delay(delay)
        self._driver = driver
        self._pipeline = pipeline or Pipeline(builtins=telemetry.builtin_middleware)
        self._topics = tuple(t.topic or "" for t in self.targets)

    def prepare(self, publisher_id: str | None = None, retry: int | None = None, *,
                delay: float | None = None) -> Notifier:
        """A notifier like this one with another publisher_id, retry or delay (seconds)."""
        clone = Notifier(self._driver, publisher_id or self.publisher_id,
                         topics=[t.topic for t in self.targets if t.topic],
                         notifier_driver=self.driver_names, serializer=self.serializer,
                         retry=self.retry if retry is None else retry, emits=self.emits,
                         delay=self.delay if delay is None else delay,
                         pipeline=self._pipeline)
        clone.captured = self.captured
        return clone

    async def notify(self, priority: str, ctxt: Any, event_type: str, payload: Any, *,
                     message_id: str | None = None, timestamp: str | None = None) -> str:
        """Send a notification of ``priority``; returns its message_id.

        ``message_id`` and ``timestamp`` (oslo's ``YYYY-MM-DD HH:MM:SS.ffffff``, UTC) are
        made here unless given, for a caller that already made them (the oslo drop-in's
        Notifier hands every driver the same message).

        Raises:
            ValueError: an unknown priority or an empty ``event_type``.
        """
        if priority not in _LOG_LEVELS:
            raise ValueError(f"unknown priority {priority!r}; choose from "
                             f"{', '.join(_LOG_LEVELS)}")
        return await self._notify(ctxt, event_type, payload, priority, message_id, timestamp)

    async def _notify(self, ctxt: Any, event_type: str, payload: Any, priority: str,
                      message_id: str | None = None, timestamp: str | None = None) -> str:
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"event_type must be a non-empty string, got {event_type!r}")
        payload = self._checked(event_type, priority, payload)
        context = self.serializer.serialize_context(ctxt)
        if "auth_token" in context:
            context["auth_token"] = None
        payload = self.serializer.serialize_entity(ctxt, payload)
        hooks = self._pipeline.hooks(SEND_NOTIFICATION)
        if hooks:
            info = NotificationInfo("send", self._topics, event_type, priority,
                                    payload=payload, context=context,
                                    publisher_id=self.publisher_id)
            sent: str = await run(hooks, info, lambda _: self._send(
                event_type, payload, priority, context, message_id, timestamp))
            return sent
        return await self._send(event_type, payload, priority, context, message_id, timestamp)

    async def _send(self, event_type: str, payload: Any, priority: str,
                    context: dict[str, Any], message_id: str | None = None,
                    timestamp: str | None = None) -> str:
        message = build_notification(self.publisher_id, event_type, priority, payload,
                                     context, message_id=message_id, timestamp=timestamp)
        if self.driver_names != ("messaging",):
            # several destinations: fail before the first one takes the message (the
            # bus driver alone encodes it anyway, and fails before sending anything)
            encode_json(message)
        await self._dispatch(message, event_type, priority)
        return str(message["message_id"])

    def _checked(self, event_type: str, priority: str, payload: Any) -> Any:
        """The payload in its declared type's JSON form; InvalidPayload when it breaks it."""
        contract = self._contracts.get(event_type)
        if contract is None:
            return payload
        payload_type, declared_priority = contract
        if declared_priority is not None and declared_priority != priority:
            raise InvalidPayload(f"{event_type} is declared as a {declared_priority} "
                                 f"notification, not {priority}", event_type)
        try:
            return to_json_value(convert(to_json_value(payload), payload_type))
        except (ValueError, TypeError) as exc:  # msgspec.ValidationError is a ValueError
            problem, path = explain(exc)
            raise InvalidPayload(f"{event_type} payload: {problem} (at {path})", event_type,
                                 path) from None

    async def _dispatch(self, message: dict[str, Any], event_type: str, priority: str) -> None:
        for name in self.driver_names:
            if name in ("messaging", "messagingv2"):
                await self._send_with_retry(message, priority)
            elif name == "log":
                logging.getLogger(f"relaybus.notification.{event_type}").log(
                    _LOG_LEVELS[priority], "%s", encode_json(message).decode("utf-8"))
            elif name == "capture":
                self.captured.append(message)

    async def _send_with_retry(self, message: dict[str, Any], priority: str) -> None:
        if self.delay is not None:
            check_transport_can_delay(self._driver, self.delay)
        for target in self.targets:
            attempt = 0
            while True:
                try:
                    if self.delay is None:
                        await self._driver.send_notification(target, message, priority)
                    else:
                        await self._driver.notify_later(target, message, priority,
                                                        self.delay)
                        count_delayed(target.topic or "", self.delay)
                    break
                except ConnectionFailure:
                    if self.retry is None or attempt >= self.retry:
                        raise
                    await asyncio.sleep(_RETRY_BACKOFF[min(attempt, len(_RETRY_BACKOFF) - 1)])
                    attempt += 1

    async def audit(self, ctxt: Any, event_type: str, payload: Any) -> str:
        """Send an AUDIT notification; returns its message_id (so do the others)."""
        return await self._notify(ctxt, event_type, payload, "audit")

    async def debug(self, ctxt: Any, event_type: str, payload: Any) -> str:
        """Send a DEBUG notification."""
        return await self._notify(ctxt, event_type, payload, "debug")

    async def info(self, ctxt: Any, event_type: str, payload: Any) -> str:
        """Send an INFO notification."""
        return await self._notify(ctxt, event_type, payload, "info")

    async def warn(self, ctxt: Any, event_type: str, payload: Any) -> str:
        """Send a WARN notification."""
        return await self._notify(ctxt, event_type, payload, "warn")

    warning = warn

    async def error(self, ctxt: Any, event_type: str, payload: Any) -> str:
        """Send an ERROR notification."""
        return await self._notify(ctxt, event_type, payload, "error")

    async def critical(self, ctxt: Any, event_type: str, payload: Any) -> str:
        """Send a CRITICAL notification."""
        return await self._notify(ctxt, event_type, payload, "critical")

    async def sample(self, ctxt: Any, event_type: str, payload: Any) -> str:
        """Send a SAMPLE notification (metering data)."""
        return await self._notify(ctxt, event_type, payload, "sample")

