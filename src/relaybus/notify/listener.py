"""Notification listeners: endpoints receive notifications, one method per priority.

An endpoint method ``info(self, ctxt, publisher_id, event_type, payload, metadata)`` gets
INFO notifications (likewise ``audit``, ``debug``, ``warn`` (or ``warning``), ``error``,
``critical``, ``sample``); ``metadata`` holds ``message_id`` and ``timestamp``. An optional
``filter_rule = NotificationFilter(...)`` on the endpoint narrows what it gets.

Listeners in the same ``pool`` share the notifications (each goes to one of them); every
pool gets every notification; listeners without a pool share one default pool. A
notification is acknowledged after its handlers return; a handler returning
``NotificationResult.REQUEUE`` gives it back for another delivery. A handler that raises
is run again as the listener's :class:`~relaybus.delivery.DeliveryPolicy` says, then the
notification is dead-lettered (or logged) and acknowledged: one bad message never loops
forever.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import inspect
import logging
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from relaybus import telemetry
from relaybus.conversion import convert
from relaybus.delivery import DeliveryPolicy
from relaybus.delivery.at_broker import overdue, resume_point, settle_each
from relaybus.delivery.attempts import GivenUp, RetryScheduled, run_with_policy
from relaybus.delivery.letters import (
    DeadLetterReason,
    notification_letter,
    replays_of,
    send_letter,
    utc_now,
)
from relaybus.errors import InvalidTarget, Rejected
from relaybus.lifecycle import Consuming
from relaybus.message import PRIORITIES, Notification
from relaybus.middleware import (
    HANDLE_NOTIFICATION,
    NotificationInfo,
    Pipeline,
    RejectionLog,
    run,
)
from relaybus.notify.filters import NotificationFilter
from relaybus.serializer import JsonPayloadSerializer, Serializer
from relaybus.target import Target
from relaybus.transport.base import Driver, IncomingNotification, Subscription

LOG = logging.getLogger(__name__)


class NotificationResult(enum.StrEnum):
    """What a handler returns: HANDLED (the default, also for None) or REQUEUE."""

    HANDLED = "handled"
    REQUEUE = "requeue"


def _method_for(endpoint: object, priority: str) -> Callable[..., Any] | None:
    names = (priority, "warning") if priority == "warn" else (priority,)
    for name in names:
        method: Callable[..., Any] | None = getattr(endpoint, name, None)
        if callable(method):
            return method
    return None


def _payload_type(method: Callable[..., Any]) -> Any:
    """The annotation of a handler's ``payload`` parameter, or None when untyped."""
    try:
        hints = typing.get_type_hints(method)
        params = list(inspect.signature(method).parameters)
    except Exception:  # noqa: BLE001 - unresolvable hints: the handler stays untyped
        return None
    name = params[3] if len(params) > 3 else "payload"
    return hints.get(name)


class _Handler:
    """One endpoint method for one priority, with its filter and payload type."""

    __slots__ = ("method", "name", "payload_type", "rule")

    def __init__(self, method: Callable[..., Any], rule: NotificationFilter | None) -> None:
        self.method = method
        self.name = str(getattr(method, "__qualname__", method))
        self.rule = rule
        self.payload_type = _payload_type(method)

    def payload(self, payload: Any) -> Any:
        """The payload converted to the handler's declared type (if any)."""
        return payload if self.payload_type is None else convert(payload, self.payload_type)


def _ids(notification: Notification) -> dict[str, Any]:
    """The ids a log line about a notification carries (see relaybus.cli.logs)."""
    return {"message_id": notification.message_id, "event_type": notification.event_type}


def _check_targets(targets: Sequence[Target]) -> list[Target]:
    if isinstance(targets, Target) or not isinstance(targets, Sequence) or not targets:
        raise InvalidTarget("a listener needs a non-empty list of Targets")
    for target in targets:
        if not isinstance(target, Target) or target.topic is None:
            raise InvalidTarget(f"listener target {target!r} needs a topic")
    return list(targets)


class _ListenerBase(Consuming):
    """What plain and batch listeners share: targets, endpoints by priority, the pool."""

    def __init__(self, driver: Driver, targets: Sequence[Target], endpoints: Sequence[object],
                 *, pool: str | None, serializer: Serializer | None, allow_requeue: bool,
                 max_concurrency: int, threads: int, drain_timeout: float,
                 delivery: DeliveryPolicy | None = None,
                 pipeline: Pipeline | None = None) -> None:
        if delivery is not None and not isinstance(delivery, DeliveryPolicy):
            raise TypeError(f"delivery must be a relaybus.DeliveryPolicy, got {delivery!r}")
        self.delivery = delivery or DeliveryPolicy()
        self.targets = _check_targets(targets)
        if isinstance(endpoints, (str, bytes)) or not isinstance(endpoints, Sequence) \
                or not endpoints:
            raise ValueError("a listener needs a non-empty list of endpoints")
        if pool is not None and (not isinstance(pool, str) or not pool or " " in pool):
            raise ValueError(f"pool must be a non-empty name without spaces, got {pool!r}")
        self.pool = pool
        self._handlers: dict[str, list[_Handler]] = {}
        for priority in PRIORITIES:
            for endpoint in endpoints:
                method = _method_for(endpoint, priority)
                if method is not None:
                    rule = getattr(endpoint, "filter_rule", None)
                    if rule is not None and not isinstance(rule, NotificationFilter):
                        raise TypeError(f"{endpoint!r}.filter_rule must be a NotificationFilter")
                    self._handlers.setdefault(priority, []).append(_Handler(method, rule))
        if not self._handlers:
            raise ValueError("no endpoint has a method for any priority "
                             f"({', '.join(PRIORITIES)})")
        super().__init__(f"relaybus.listener[{pool or 'default'}]",
                         max_concurrency=max_concurrency, threads=threads,
                         drain_timeout=drain_timeout)
        self._driver = driver
        self._serializer = serializer or JsonPayloadSerializer()
        self._allow_requeue = allow_requeue
        self._pipeline = pipeline or Pipeline(builtins=telemetry.builtin_middleware)
        self._topics = tuple(t.topic or "" for t in self.targets)
        self.rejections = RejectionLog(LOG, f"listener[{pool or 'default'}]")

    @property
    def priorities(self) -> list[str]:
        """The priorities some endpoint handles (the only ones consumed)."""
        return list(self._handlers)

    async def _subscribe(self) -> Subscription:
        if self.pool is not None and await self._driver.rpc_topic_in_use(self.pool):
            raise InvalidTarget(
                f"pool {self.pool!r} would consume the queue of RPC topic {self.pool!r}: "
                f"notifications would reach that topic's servers and its requests this "
                f"listener; name the pool differently")
        pairs = [(t, p) for t in self.targets for p in self._handlers]
        return await self._driver.listen_for_notifications(pairs, self.pool, self._on_message)

    @abc.abstractmethod
    def _on_message(self, incoming: IncomingNotification) -> Awaitable[None]:
        """Take one delivered notification (each listener kind hands it on its own way)."""

    def _decode(self, incoming: IncomingNotification) -> tuple[Any, Any]:
        notification = incoming.notification
        # oslo.messaging listeners see client_timeout too (always None for notifications)
        ctxt = self._serializer.deserialize_context({**notification.context,
                                                     "client_timeout": None})
        return ctxt, self._serializer.deserialize_entity(ctxt, notification.payload)

    async def _give_up(self, n: Notification, handler: str, failure: GivenUp) -> None:
        """Log a handler's last failure and dead-letter the notification (if a topic is set)."""
        cause = failure.cause
        LOG.error("notification handler %s failed on %s (%s) after %d attempt(s)%s: %s: %s",
                  handler, n.event_type, n.message_id, failure.attempts,
                  " (a permanent error)" if failure.permanent else "", type(cause).__name__,
                  cause, extra=_ids(n))
        if self.delivery.dead_letter is None:
            return
        target = self.targets[0]
        reason = DeadLetterReason(
            kind="notification", error_type=type(cause).__name__, error_message=str(cause),
            attempts=failure.attempts, first_failure=failure.first_failure,
            last_failure=failure.last_failure,
            topic=",".join(t.topic or "" for t in self.targets),
            exchange=self._driver.exchange_for(target), message_id=n.message_id,
            handler=handler, permanent=failure.permanent, pool=self.pool, priority=n.priority,
            replays=replays_of(n.context))
        await send_letter(self._driver, self.delivery.dead_letter,
                          notification_letter(n, reason), reason)

    async def _settle(self, incomings: Sequence[IncomingNotification], requeue: bool) -> None:
        for incoming in incomings:
            if requeue and self._allow_requeue:
                await incoming.requeue()
            else:
                await incoming.acknowledge()


class NotificationListener(_ListenerBase):
    """Delivers each notification to the endpoints that handle its priority.

    Args:
        driver: the bus's transport.
        targets: the topics (and exchanges) to listen on.
        endpoints: objects with one method per priority they want.
        pool: the pool this listener shares notifications with (None: the default pool).
        serializer: converts payloads and contexts.
        allow_requeue: honour ``NotificationResult.REQUEUE`` (else acknowledge anyway).
        delivery: what happens when a handler raises: attempts, backoff, permanent
            errors, dead-letter topic (see :class:`~relaybus.delivery.DeliveryPolicy`;
            default: one attempt, then log and drop). A dead letter is the notification
            with the same message_id and a :class:`~relaybus.delivery.DeadLetterReason`
            in its context (``relaybus_dead_letter``).
        retries, retry_backoff, dead_letter_topic: shorthands for
            ``DeliveryPolicy(attempts=retries + 1, backoff=retry_backoff,
            dead_letter=dead_letter_topic)``; not together with ``delivery``.
        max_concurrency, threads, drain_timeout: as for :class:`~relaybus.rpc.RPCServer`.
        pipeline: the bus's middleware (default: telemetry only); its
            ``handle_notification`` hooks run around each notification's handlers.

    Attributes:
        rejections: notifications the middleware rejected (acknowledged, not
            dead-lettered), counted by reason (error class).
    """

    def __init__(self, driver: Driver, targets: Sequence[Target], endpoints: Sequence[object],
                 *, pool: str | None = None, serializer: Serializer | None = None,
                 allow_requeue: bool = True, delivery: DeliveryPolicy | None = None,
                 retries: int | None = None, retry_backoff: float | None = None,
                 dead_letter_topic: str | None = None, max_concurrency: int = 64,
                 threads: int = 16, drain_timeout: float = 30.0,
                 pipeline: Pipeline | None = None) -> None:
        shorthands = (retries, retry_backoff, dead_letter_topic)
        if delivery is not None and any(v is not None for v in shorthands):
            raise ValueError("give delivery= or retries/retry_backoff/dead_letter_topic, "
                             "not both")
        if delivery is None:
            delivery = DeliveryPolicy.from_shorthands(
                0 if retries is None else retries,
                0.5 if retry_backoff is None else retry_backoff, dead_letter_topic)
        super().__init__(driver, targets, endpoints, pool=pool, serializer=serializer,
                         allow_requeue=allow_requeue, max_concurrency=max_concurrency,
                         threads=threads, drain_timeout=drain_timeout, delivery=delivery,
                         pipeline=pipeline)

    def _on_message(self, incoming: IncomingNotification) -> Awaitable[None]:
        return self._hand_over(lambda: self._handle(incoming))

    async def _handle(self, incoming: IncomingNotification) -> None:
        hooks = self._pipeline.hooks(HANDLE_NOTIFICATION)
        if not hooks:
            requeue = await self._deliver(incoming)
            await self._settle([incoming], requeue)
            return
        n = incoming.notification
        info = NotificationInfo("handle", self._topics, n.event_type, n.priority,
                                payload=n.payload, context=n.context,
                                publisher_id=n.publisher_id, message_id=n.message_id)
        try:
            result = await run(hooks, info, lambda _: self._outcome(incoming))
        except Rejected as exc:
            self.rejections.note(f"notification {n.event_type} ({n.message_id})", exc,
                                 _ids(n))
            result = NotificationResult.HANDLED  # a decision, not a failure: acknowledged
        except Exception:  # a middleware failed: like a failing handler, never loop
            LOG.exception("middleware failed on notification %s (%s)", n.message_id,
                          n.event_type, extra=_ids(n))
            result = NotificationResult.HANDLED
        await self._settle([incoming], result == NotificationResult.REQUEUE)

    async def _outcome(self, incoming: IncomingNotification) -> str:
        requeue = await self._deliver(incoming)
        return (NotificationResult.REQUEUE if requeue and self._allow_requeue
                else NotificationResult.HANDLED)

    async def _deliver(self, incoming: IncomingNotification) -> bool:
        """Run the handlers of one notification; True when one asked for a requeue."""
        n = incoming.notification
        requeue = False
        try:
            ctxt, payload = self._decode(incoming)
            metadata = n.metadata
            for handler in self._handlers.get(n.priority, ()):
                if handler.rule is not None and not handler.rule.match(
                        ctxt, n.publisher_id, n.event_type, metadata, payload):
                    continue
                name = handler.name
                try:
                    typed_payload = handler.payload(payload)
                except (msgspec.ValidationError, ValueError, TypeError) as exc:
                    LOG.warning("notification %s (%s) does not fit the payload type of %s: %s",
                                n.message_id, n.event_type, name, exc, extra=_ids(n))
                    continue
                try:
                    result = await self._run(incoming, handler, name, ctxt, typed_payload,
                                             metadata)
                except GivenUp as failure:
                    await self._give_up(n, name, failure)
                    continue
                except RetryScheduled:  # settled: the broker delivers it again
                    return False
                requeue = requeue or result == NotificationResult.REQUEUE
        except asyncio.CancelledError:
            await incoming.requeue()
            raise
        except Exception:
            LOG.exception("cannot handle notification %s", n.message_id, extra=_ids(n))
        return requeue

    async def _run(self, incoming: IncomingNotification, handler: _Handler, name: str,
                   ctxt: Any, payload: Any, metadata: dict[str, Any]) -> Any:
        n = incoming.notification

        def run() -> Any:
            return self.executor.run(handler.method, ctxt, n.publisher_id, n.event_type,
                                     payload, metadata)
        attempt, first_failure, later = resume_point(self.delivery, incoming)
        return await run_with_policy(
            self.delivery, run, what=lambda: f"notification handler {name} failed on "
            f"{n.event_type} ({n.message_id})", target=self.targets[0].topic or "",
            log_extra=lambda: _ids(n),
            attempt=attempt, first_failure=first_failure, later=later)


class BatchNotificationListener(_ListenerBase):
    """Delivers notifications in batches: ``info(self, messages)`` gets a list.

    Each message is a dict with ``ctxt``, ``publisher_id``, ``event_type``, ``payload``,
    ``metadata`` and ``priority``. A batch is handed over when ``batch_size`` messages
    wait, or ``batch_timeout`` seconds after its first one arrived; each endpoint gets
    the messages of its priority that pass its filter. ``REQUEUE`` requeues the batch.
    A handler that raises gets the same messages again as ``delivery`` says (see
    :class:`~relaybus.delivery.DeliveryPolicy`); given up, each of them is dead-lettered.
    With ``at_broker=True`` each message of a failed run waits at the broker for its own
    next attempt (counted per message), and comes back in whichever batch is open then.
    """

    def __init__(self, driver: Driver, targets: Sequence[Target], endpoints: Sequence[object],
                 *, batch_size: int, batch_timeout: float | None = None,
                 pool: str | None = None, serializer: Serializer | None = None,
                 allow_requeue: bool = True, delivery: DeliveryPolicy | None = None,
                 max_concurrency: int = 8, threads: int = 4,
                 drain_timeout: float = 30.0) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        if batch_timeout is not None and batch_timeout <= 0:
            raise ValueError(f"batch_timeout must be a positive number, got {batch_timeout!r}")
        super().__init__(driver, targets, endpoints, pool=pool, serializer=serializer,
                         allow_requeue=allow_requeue, max_concurrency=max_concurrency,
                         threads=threads, drain_timeout=drain_timeout, delivery=delivery)
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self._batch: list[IncomingNotification] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timed_flush: asyncio.Task[None] | None = None  # owned: awaited at drain

    async def _on_message(self, incoming: IncomingNotification) -> None:
        self._batch.append(incoming)
        if len(self._batch) >= self.batch_size:
            await self._flush()
        elif self._timer is None and self.batch_timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(self.batch_timeout,
                                                                self._flush_on_time)

    def _flush_on_time(self) -> None:
        self._timer = None
        self._timed_flush = asyncio.get_running_loop().create_task(
            self._flush(), name="relaybus.batch-listener.flush")

    async def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._batch = self._batch, []
        if batch and self._executor is not None:
            await self._executor.submit(lambda: self._handle(batch))

    async def _before_drain(self) -> None:
        if self._timed_flush is not None:
            await self._timed_flush
        await self._flush()

    async def _handle(self, batch: list[IncomingNotification]) -> None:
        requeue = False
        settled: set[int] = set()  # ids of deliveries handed to the broker for a retry
        try:
            by_priority: dict[str, list[tuple[dict[str, Any], IncomingNotification]]] = {}
            for incoming in batch:
                n = incoming.notification
                if self.delivery.at_broker:
                    gone = overdue(self.delivery, incoming)
                    if gone is not None:  # delivered more often than the policy allows
                        await self._give_up(n, "batch listener", gone)
                        continue
                try:
                    ctxt, payload = self._decode(incoming)
                except Exception:
                    LOG.exception("cannot decode notification %s", n.message_id)
                    continue
                by_priority.setdefault(n.priority, []).append(({
                    "ctxt": ctxt, "publisher_id": n.publisher_id, "event_type": n.event_type,
                    "payload": payload, "metadata": n.metadata, "priority": n.priority},
                    incoming))
            for priority, messages in by_priority.items():
                for handler in self._handlers.get(priority, ()):
                    rule = handler.rule
                    chosen = [(m, i) for m, i in messages if id(i) not in settled and (
                        rule is None or rule.match(m["ctxt"], m["publisher_id"],
                                                   m["event_type"], m["metadata"],
                                                   m["payload"]))]
                    if not chosen:
                        continue
                    name = str(getattr(handler.method, "__qualname__", handler.method))
                    result, handed = await self._run_batch(handler, name, chosen)
                    settled.update(id(i) for i in handed)
                    requeue = requeue or result == NotificationResult.REQUEUE
        except asyncio.CancelledError:
            await self._settle([i for i in batch if id(i) not in settled], True)
            raise
        await self._settle([i for i in batch if id(i) not in settled], requeue)

    async def _run_batch(self, handler: _Handler, name: str,
                         chosen: list[tuple[dict[str, Any], IncomingNotification]],
                         ) -> tuple[Any, list[IncomingNotification]]:
        """Run a batch handler under the policy: (its result, the deliveries whose retry
        was handed to the broker)."""
        what = f"batch handler {name} failed on {len(chosen)} message(s)"
        target = self.targets[0].topic or ""

        async def give_up(incoming: IncomingNotification, failure: GivenUp) -> None:
            await self._give_up(incoming.notification, name, failure)

        def run_on(part: list[tuple[dict[str, Any], IncomingNotification]]) -> Any:
            return self.executor.run(handler.method, [m for m, _ in part])

        handed: list[IncomingNotification] = []
        if self.delivery.at_broker:  # one run here; each retry waits at the broker
            try:
                return await run_on(chosen), handed
            except Exception as exc:  # noqa: BLE001 - each message settled as the policy says
                handed, refused = await settle_each(self.delivery, exc,
                                                    [i for _, i in chosen],
                                                    give_up=give_up, what=what, target=target)
            if not refused:
                return None, handed
            # the broker did not take them: wait here instead, from their next attempt
            waiting = {id(i) for i in refused}
            chosen = [(m, i) for m, i in chosen if id(i) in waiting]
            attempt, first, _ = resume_point(self.delivery, refused[0])
            await asyncio.sleep(self.delivery.pause(attempt))
            start: tuple[int, str | None] = (attempt + 1, first or utc_now())
        else:
            start = (1, None)
        try:
            result = await run_with_policy(self.delivery, lambda: run_on(chosen), what=what,
                                           target=target, attempt=start[0],
                                           first_failure=start[1])
        except GivenUp as failure:
            for _, incoming in chosen:
                await give_up(incoming, failure)
            return None, handed
        return result, handed
