"""Middleware: code that runs around sending and handling every request and notification.

A middleware is an object with up to four async methods, one per *point*; each gets a
description of the message and ``call_next``, the rest of the chain, and decides what
happens around it::

    class Timing(relaybus.Middleware):
        async def handle_request(self, request, call_next):
            started = time.perf_counter()
            try:
                return await call_next(request)
            finally:
                print(request.method, time.perf_counter() - started)

    bus = await relaybus.connect(url, middleware=[Timing()])

======================  ===========================================  ====================
point                   around                                       ``call_next`` returns
======================  ===========================================  ====================
``send_request``        a call or cast leaving a client              the call's result
                                                                     (None for a cast)
``handle_request``      a server decoding, dispatching and running   the endpoint's result
                        a request (the reply is sent afterwards)
``send_notification``   a notifier building and sending one          its ``message_id``
                        notification (to all its topics)
``handle_notification`` a listener running the handlers of one       ``"handled"`` or
                        notification (settled afterwards)            ``"requeue"``
======================  ===========================================  ====================

A middleware only runs at the points its class overrides; a bus with none at a point
builds no description and adds no call there, so an unused point costs nothing.
:class:`Hooks` turns plain ``before``/``after``/``on_error`` functions, sync or async,
into a middleware.

**Context.** ``message.context`` is the message context as it travels (the serialized
form, a dict): keys added while sending go over the wire; keys added while handling reach
the endpoint's ``ctxt`` and the listener's handlers.

**Rejecting.** Raise :class:`~relaybus.errors.Rejected` (or a subclass of it, your own
typed reason). While sending, the caller gets it and nothing is sent. While handling, the
endpoint is not run: the caller of a *call* gets the error back with its type kept (as
``Rejected``, or your subclass when its module is in the client's
``allowed_remote_exmods``; otherwise a ``RemoteError`` naming it); a rejected *cast* or
*notification* is counted (:attr:`RejectionLog.counts`, and the Prometheus counter
``relaybus_messages_rejected_total`` when metrics are on) and logged once per reason and
consumer (later ones at DEBUG). A rejected notification is acknowledged: it is neither
requeued nor dead-lettered, since a rejection is a decision, not a failure that another
attempt could fix (a middleware that wants to keep it can send it on itself).

The chain runs in the order given, the first middleware outermost; relaybus's own
telemetry (:mod:`relaybus.telemetry`) is built-in middleware placed outside yours, so its
spans and timings include your middleware and its counts see your rejections.
"""

from __future__ import annotations

import collections
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

from relaybus.errors import Rejected

SEND_REQUEST = "send_request"
HANDLE_REQUEST = "handle_request"
SEND_NOTIFICATION = "send_notification"
HANDLE_NOTIFICATION = "handle_notification"
POINTS = (SEND_REQUEST, HANDLE_REQUEST, SEND_NOTIFICATION, HANDLE_NOTIFICATION)

Side = Literal["send", "handle"]
M = TypeVar("M", "RequestInfo", "NotificationInfo")
Next = Callable[[M], Awaitable[Any]]
Hook = Callable[[Any, Callable[[Any], Awaitable[Any]]], Awaitable[Any]]


class RequestInfo:
    """A call or cast as middleware sees it, while sending or handling.

    Attributes:
        kind: ``"call"`` or ``"cast"``.
        side: ``"send"`` (in a client) or ``"handle"`` (in a server).
        topic, server, fanout: where it goes (sending) or the server taking it (handling).
        method, namespace, version: what it asks for.
        args: the arguments in their serialized form (read them; do not replace them).
        context: the message context as it travels; add keys to pass them on.
        message_id: the request's id where the transport gave one (handling), else None.
        timeout: seconds the caller waits (a call), else None.
        resolved: while handling, whether an endpoint method serves this request (the
            server looks it up before the chain runs; when none does, ``call_next`` raises
            NoSuchMethod or UnsupportedVersion), so middleware can tell a real method name
            from a junk one (telemetry labels the latter ``<unknown>``).
    """

    __slots__ = ("args", "context", "fanout", "kind", "message_id", "method", "namespace",
                 "resolved", "server", "side", "timeout", "topic", "version")

    def __init__(self, kind: str, side: Side, topic: str, method: str, *,
                 args: dict[str, Any], context: dict[str, Any], server: str | None = None,
                 fanout: bool = False, namespace: str | None = None,
                 version: str | None = None, message_id: str | None = None,
                 timeout: float | None = None) -> None:
        self.kind = kind
        self.side = side
        self.topic = topic
        self.method = method
        self.args = args
        self.context = context
        self.server = server
        self.fanout = fanout
        self.namespace = namespace
        self.version = version
        self.message_id = message_id
        self.timeout = timeout
        self.resolved = False

    def __repr__(self) -> str:
        return (f"RequestInfo({self.kind} {self.side} {self.topic}.{self.method}"
                f"{'' if self.server is None else ' server=' + self.server})")


class NotificationInfo:
    """A notification as middleware sees it, while sending or handling.

    Attributes:
        kind: always ``"notification"`` (so one function can serve every point).
        side: ``"send"`` (in a notifier) or ``"handle"`` (in a listener).
        topics: the notifier's topics (sending) or the listener's (handling).
        event_type, priority, publisher_id: what it is and who sent it.
        payload: the payload in its serialized form.
        context: the message context as it travels; add keys to pass them on.
        message_id: the notification's id while handling; None while sending (the chain
            returns it).
    """

    __slots__ = ("context", "event_type", "kind", "message_id", "payload", "priority",
                 "publisher_id", "side", "topics")

    def __init__(self, side: Side, topics: tuple[str, ...], event_type: str, priority: str,
                 *, payload: Any, context: dict[str, Any], publisher_id: str | None = None,
                 message_id: str | None = None) -> None:
        self.kind = "notification"
        self.side = side
        self.topics = topics
        self.event_type = event_type
        self.priority = priority
        self.payload = payload
        self.context = context
        self.publisher_id = publisher_id
        self.message_id = message_id

    def __repr__(self) -> str:
        return f"NotificationInfo({self.side} {self.event_type} {self.priority})"


class Middleware:
    """Base class of middleware: override the points you need, leave the others.

    Each method gets the message description and ``call_next``; it returns what
    ``call_next`` returned (or something else in its place), raises to fail the message, or
    raises :class:`~relaybus.errors.Rejected` to refuse it. Methods run on the bus's event
    loop, so they must not block; for blocking work use ``asyncio.to_thread``.
    """

    async def send_request(self, request: RequestInfo,
                           call_next: Next[RequestInfo]) -> Any:
        """Around a client sending a call or cast; returns the call's result."""
        return await call_next(request)

    async def handle_request(self, request: RequestInfo,
                             call_next: Next[RequestInfo]) -> Any:
        """Around a server handling a call or cast; returns the endpoint's result."""
        return await call_next(request)

    async def send_notification(self, notification: NotificationInfo,
                                call_next: Next[NotificationInfo]) -> Any:
        """Around a notifier sending a notification; returns its message_id."""
        return await call_next(notification)

    async def handle_notification(self, notification: NotificationInfo,
                                  call_next: Next[NotificationInfo]) -> Any:
        """Around a listener handling a notification; returns ``handled`` or ``requeue``."""
        return await call_next(notification)

    def wraps(self, point: str) -> bool:
        """Whether this middleware runs at ``point`` (default: its class overrides it)."""
        return getattr(type(self), point) is not getattr(Middleware, point)


HookFunction = Callable[..., Any]


class Hooks(Middleware):
    """A middleware from plain functions, sync or async.

    ``before(message)`` runs first (raise :class:`~relaybus.errors.Rejected` to refuse the
    message); ``after(message, result)`` runs when the rest succeeded; ``on_error(message,
    exc)`` when it raised (the exception goes on afterwards). A function returning an
    awaitable is awaited; a plain one runs on the event loop and must be quick.

    Args:
        before, after, on_error: the functions (any may be None).
        points: where they run (default: all four; see :data:`POINTS`). ``message.kind``
            and ``message.side`` tell the points apart inside one function.
    """

    def __init__(self, *, before: HookFunction | None = None,
                 after: HookFunction | None = None, on_error: HookFunction | None = None,
                 points: Sequence[str] = POINTS) -> None:
        unknown = set(points) - set(POINTS)
        if isinstance(points, str) or unknown:
            raise ValueError(f"points must be a list among {', '.join(POINTS)}, "
                             f"got {points!r}")
        self.before = before
        self.after = after
        self.on_error = on_error
        self.points = frozenset(points)

    def wraps(self, point: str) -> bool:
        return point in self.points

    async def _around(self, message: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        if self.before is not None:
            await _maybe_await(self.before(message))
        try:
            result = await call_next(message)
        except Exception as exc:
            if self.on_error is not None:
                await _maybe_await(self.on_error(message, exc))
            raise
        if self.after is not None:
            await _maybe_await(self.after(message, result))
        return result

    async def send_request(self, request: RequestInfo, call_next: Next[RequestInfo]) -> Any:
        return await self._around(request, call_next)

    async def handle_request(self, request: RequestInfo,
                             call_next: Next[RequestInfo]) -> Any:
        return await self._around(request, call_next)

    async def send_notification(self, notification: NotificationInfo,
                                call_next: Next[NotificationInfo]) -> Any:
        return await self._around(notification, call_next)

    async def handle_notification(self, notification: NotificationInfo,
                                  call_next: Next[NotificationInfo]) -> Any:
        return await self._around(notification, call_next)


async def _maybe_await(value: Any) -> None:
    if inspect.isawaitable(value):
        await value


def run(hooks: tuple[Hook, ...], message: Any,
        inner: Callable[[Any], Awaitable[Any]]) -> Awaitable[Any]:
    """Run ``message`` through ``hooks`` (outermost first) and then ``inner``."""
    return _step(hooks, 0, message, inner)


def _step(hooks: tuple[Hook, ...], index: int, message: Any,
          inner: Callable[[Any], Awaitable[Any]]) -> Awaitable[Any]:
    if index == len(hooks):
        return inner(message)
    return hooks[index](message, lambda msg: _step(hooks, index + 1, msg, inner))


BuiltinSource = Callable[[], tuple[Middleware, ...]]


class Pipeline:
    """The middleware of one bus, composed once per point.

    Args:
        middleware: the application's, in order (the first is outermost).
        builtins: a function returning the built-in middleware in effect now (telemetry:
            it changes when a tracer provider is installed or metrics are switched on); it
            is asked on every message and must be cheap, and its answer is composed again
            only when it returns another tuple.
    """

    __slots__ = ("_builtins", "_hooks", "_middleware", "_seen")

    def __init__(self, middleware: Sequence[Middleware] = (),
                 builtins: BuiltinSource | None = None) -> None:
        if isinstance(middleware, Middleware) or not isinstance(middleware, Sequence):
            raise TypeError("middleware must be a list of relaybus.Middleware objects")
        for item in middleware:
            if not isinstance(item, Middleware):
                raise TypeError(f"middleware must be relaybus.Middleware objects, got {item!r}")
        self._middleware = tuple(middleware)
        self._builtins = builtins
        self._seen: tuple[Middleware, ...] | None = None
        self._hooks: dict[str, tuple[Hook, ...]] = {}
        self._compose(())

    @property
    def middleware(self) -> tuple[Middleware, ...]:
        """The application's middleware, in order."""
        return self._middleware

    def _compose(self, builtins: tuple[Middleware, ...]) -> None:
        layers = (*builtins, *self._middleware)
        self._hooks = {point: tuple(getattr(m, point) for m in layers if m.wraps(point))
                       for point in POINTS}
        self._seen = builtins

    def hooks(self, point: str) -> tuple[Hook, ...]:
        """The hooks that run at ``point`` now, outermost first (empty: nothing to run)."""
        if self._builtins is not None:
            builtins = self._builtins()
            if builtins is not self._seen:
                self._compose(builtins)
        return self._hooks[point]


class RejectionLog:
    """Counts rejected casts and notifications of one consumer, and logs each reason once.

    The first rejection of each error class is logged at WARNING, later ones at DEBUG, so a
    rate limit turning away thousands of messages does not flood the log; every one is
    counted in :attr:`counts` (by error class name).
    """

    def __init__(self, logger: logging.Logger, consumer: str) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._logger = logger
        self._consumer = consumer

    def note(self, what: str, exc: Rejected, extra: dict[str, Any]) -> None:
        """Count one rejection of ``what`` (e.g. ``cast compute.resize``) and log it."""
        reason = type(exc).__name__
        first = reason not in self.counts
        self.counts[reason] += 1
        self._logger.log(
            logging.WARNING if first else logging.DEBUG,
            "%s rejected by middleware on %s: %s: %s%s", what, self._consumer, reason, exc,
            "; further rejections for this reason are counted and logged at DEBUG"
            if first else "", extra=extra)
