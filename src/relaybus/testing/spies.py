"""Spies: endpoints that record what they receive, for a test to inspect and await.

:func:`spy_on` wraps an RPC or notification endpoint; the spy is passed to a server or
listener in the endpoint's place, every call reaches the real endpoint, and the test awaits
``await spy.next_call("add")``. :class:`NotificationCapture` is an endpoint that records
every notification it gets. Waits never poll: each recorded item wakes the waiters, and a
wait that runs out of time fails the test with :class:`WaitTimeout`, saying what did arrive.

Calls are recorded as they start (a blocked method still shows), from whichever thread runs
the method (plain ``def`` methods run in the server's threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from relaybus.message import PRIORITIES
from relaybus.rpc.dispatcher import remote_method

DEFAULT_TIMEOUT = 5.0
# The names a notification listener looks up on an endpoint.
LISTENER_METHODS = (*PRIORITIES, "warning")

T = TypeVar("T")
R = TypeVar("R")


class WaitTimeout(AssertionError):
    """What a test awaited did not arrive in time (a test failure, not an error)."""


def _check_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


class _Log(Generic[T]):
    """Items recorded from any thread, which coroutines on the event loop wait for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[T] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[asyncio.Future[None]] = []

    def add(self, item: T) -> None:
        with self._lock:
            self._items.append(item)
            loop = self._loop
        if loop is None:  # nobody has waited yet, so nobody is waiting
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(self._wake)

    def items(self) -> list[T]:
        with self._lock:
            return list(self._items)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, found: Callable[[list[T]], R | None], timeout: float,
                   missing: Callable[[list[T]], str]) -> R:
        """``found(items)`` once it is not None; WaitTimeout(``missing(items)``) if it stays
        None for ``timeout`` seconds."""
        timeout = _check_timeout(timeout)
        loop = asyncio.get_running_loop()
        with self._lock:
            self._loop = loop
        try:
            async with asyncio.timeout(timeout):
                while True:
                    result = found(self.items())
                    if result is not None:
                        return result
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._waiters.append(waiter)  # an add() from now on wakes it
                    await waiter
        except TimeoutError:
            raise WaitTimeout(f"{missing(self.items())} within {timeout:g} s") from None


@dataclass(frozen=True)
class Call:
    """One call an endpoint method received.

    ``args`` and ``kwargs`` are what followed the context (an RPC server passes the
    request's arguments by keyword); ``arguments`` names them all after the method's
    parameters, so ``call.arguments["x"]`` reads ``x`` however it was passed.
    """

    method: str
    ctxt: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    arguments: dict[str, Any]


def _named(method: Callable[..., Any], args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        bound = inspect.signature(method).bind(None, *args, **kwargs)
    except (TypeError, ValueError):  # a call the method would refuse: keep what is known
        return dict(kwargs)
    named = dict(bound.arguments)
    named.pop(next(iter(named)))  # the context
    return named


class _Recorder:
    """Wraps an endpoint's methods so each call is logged before it runs."""

    def __init__(self, endpoint: object) -> None:
        self.endpoint = endpoint
        self.log: _Log[Call] = _Log()
        self._wrappers: dict[str, Callable[..., Any]] = {}

    def method(self, name: str) -> Callable[..., Any] | None:
        """The recording wrapper of the endpoint's method ``name``, or None if remote
        callers cannot reach such a method (the dispatcher's own rule)."""
        wrapper = self._wrappers.get(name)
        if wrapper is None:
            original = remote_method(self.endpoint, name)
            if original is None:
                return None
            wrapper = self._wrappers[name] = self._wrap(name, original)
        return wrapper

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        log = self.log

        def record(ctxt: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            log.add(Call(name, ctxt, args, kwargs, _named(original, args, kwargs)))

        if inspect.iscoroutinefunction(original):
            @functools.wraps(original)
            async def recorded_async(ctxt: Any, *args: Any, **kwargs: Any) -> Any:
                record(ctxt, args, kwargs)
                return await original(ctxt, *args, **kwargs)
            return recorded_async

        @functools.wraps(original)
        def recorded(ctxt: Any, *args: Any, **kwargs: Any) -> Any:
            record(ctxt, args, kwargs)
            return original(ctxt, *args, **kwargs)
        return recorded


class Spy:
    """An endpoint standing in for another, recording every call it passes on.

    Remote callers reach exactly the methods they would reach on the wrapped endpoint
    (resolved by ``__relaybus_method__``); a listener finds its priority methods on the
    spy's generated class. ``target`` and ``filter_rule`` are the wrapped endpoint's.
    Build one with :func:`spy_on`.
    """

    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder
        self._taken: dict[str, int] = {}

    @property
    def wrapped(self) -> object:
        """The endpoint the calls reach."""
        return self._recorder.endpoint

    @property
    def target(self) -> Any:
        return getattr(self._recorder.endpoint, "target", None)

    @property
    def filter_rule(self) -> Any:
        return getattr(self._recorder.endpoint, "filter_rule", None)

    def __relaybus_method__(self, name: str) -> Callable[..., Any] | None:
        return self._recorder.method(name)

    @property
    def calls(self) -> list[Call]:
        """Every call so far, to any method, in the order they started."""
        return self._recorder.log.items()

    def calls_to(self, method: str) -> list[Call]:
        """The calls so far to ``method``."""
        self._check(method)
        return [call for call in self.calls if call.method == method]

    async def next_call(self, method: str, *, timeout: float = DEFAULT_TIMEOUT) -> Call:
        """The next call to ``method`` not yet returned by ``next_call``, waiting for it.

        The first ``next_call("add")`` returns the first call to ``add`` (even one made
        before it was awaited), the second the second, and so on.

        Raises:
            WaitTimeout: no such call started within ``timeout`` seconds.
            ValueError: the endpoint has no method ``method`` remote callers can reach.
        """
        self._check(method)
        index = self._taken.get(method, 0)

        def found(calls: list[Call]) -> Call | None:
            matching = [call for call in calls if call.method == method]
            return matching[index] if len(matching) > index else None

        call = await self._recorder.log.wait(found, timeout, functools.partial(
            self._missing, f"call #{index + 1} to {self._name}.{method}"))
        self._taken[method] = index + 1
        return call

    async def wait_for_calls(self, method: str, count: int, *,
                             timeout: float = DEFAULT_TIMEOUT) -> list[Call]:
        """The first ``count`` calls to ``method``, once there are that many.

        Raises:
            WaitTimeout: fewer started within ``timeout`` seconds.
        """
        self._check(method)
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count!r}")

        def found(calls: list[Call]) -> list[Call] | None:
            matching = [call for call in calls if call.method == method]
            return matching[:count] if len(matching) >= count else None

        return await self._recorder.log.wait(found, timeout, functools.partial(
            self._missing, f"{count} calls to {self._name}.{method}"))

    @property
    def _name(self) -> str:
        return type(self._recorder.endpoint).__name__

    def _check(self, method: str) -> None:
        if self._recorder.method(method) is None:
            raise ValueError(f"{self._name} has no method {method!r} that remote callers "
                             f"can reach")

    @staticmethod
    def _missing(wanted: str, calls: list[Call]) -> str:
        seen = ", ".join(f"{call.method}({call.arguments})" for call in calls[-5:])
        return f"no {wanted} ({len(calls)} calls so far{': ' + seen if seen else ''})"

    def __repr__(self) -> str:
        return f"<spy on {self._recorder.endpoint!r}: {len(self.calls)} calls>"


def spy_on(endpoint: object) -> Spy:
    """A spy standing in for ``endpoint``: pass it to ``bus.rpc_server`` or
    ``bus.notification_listener`` instead, and await what it receives."""
    if isinstance(endpoint, (Spy, type)):
        raise TypeError(f"spy_on takes an endpoint object, got {endpoint!r}")
    recorder = _Recorder(endpoint)
    namespace: dict[str, Any] = {"__module__": __name__}
    for name in LISTENER_METHODS:  # a listener looks these up as attributes
        method = recorder.method(name)
        if method is not None:
            namespace[name] = staticmethod(method)
    klass = type(f"Spy[{type(endpoint).__name__}]", (Spy,), namespace)
    spy: Spy = klass(recorder)
    return spy


@dataclass(frozen=True)
class CapturedNotification:
    """One notification as a listener endpoint received it."""

    priority: str
    ctxt: Any
    publisher_id: str
    event_type: str
    payload: Any
    metadata: dict[str, Any]


def _handler(priority: str) -> Callable[..., Any]:
    async def handle(self: NotificationCapture, ctxt: Any, publisher_id: str, event_type: str,
                     payload: Any, metadata: dict[str, Any]) -> None:
        self._log.add(CapturedNotification(priority, ctxt, publisher_id, event_type, payload,
                                           metadata))
    handle.__name__ = handle.__qualname__ = priority
    return handle


class NotificationCapture:
    """A listener endpoint recording every notification of every priority.

    ``await capture.next()`` returns the notifications one by one in arrival order;
    ``await capture.wait_for(n)`` the first ``n`` (of an event type, if given).
    """

    def __init__(self) -> None:
        self._log: _Log[CapturedNotification] = _Log()
        self._taken = 0

    audit = _handler("audit")
    debug = _handler("debug")
    info = _handler("info")
    warn = _handler("warn")
    error = _handler("error")
    critical = _handler("critical")
    sample = _handler("sample")

    @property
    def notifications(self) -> list[CapturedNotification]:
        """Every notification so far, in arrival order."""
        return self._log.items()

    def __len__(self) -> int:
        return len(self._log.items())

    async def next(self, *, timeout: float = DEFAULT_TIMEOUT) -> CapturedNotification:
        """The next notification not yet returned by ``next``, waiting for it.

        Raises:
            WaitTimeout: none arrived within ``timeout`` seconds.
        """
        index = self._taken

        def found(items: list[CapturedNotification]) -> CapturedNotification | None:
            return items[index] if len(items) > index else None

        item = await self._log.wait(found, timeout, functools.partial(
            self._missing, f"notification #{index + 1}"))
        self._taken = index + 1
        return item

    async def wait_for(self, count: int, *, event_type: str | None = None,
                       timeout: float = DEFAULT_TIMEOUT) -> list[CapturedNotification]:
        """The first ``count`` notifications (of ``event_type``, if given), once there are
        that many.

        Raises:
            WaitTimeout: fewer arrived within ``timeout`` seconds.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count!r}")

        def found(items: list[CapturedNotification]) -> list[CapturedNotification] | None:
            matching = [n for n in items if event_type is None or n.event_type == event_type]
            return matching[:count] if len(matching) >= count else None

        wanted = f"{count} notifications" + (f" of {event_type}" if event_type else "")
        return await self._log.wait(found, timeout, functools.partial(self._missing, wanted))

    @staticmethod
    def _missing(wanted: str, items: list[CapturedNotification]) -> str:
        seen = ", ".join(f"{n.priority} {n.event_type}" for n in items[-5:])
        return f"no {wanted} ({len(items)} so far{': ' + seen if seen else ''})"
