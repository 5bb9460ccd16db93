"""Blocking versions of the bus objects, for threaded programs.

One event loop runs on a background thread (started on first use, shared by every sync
bus of the process; uvloop where it is installed, see :mod:`relaybus.loops`); each
blocking method runs its async twin there and waits for it. Endpoint methods are the same
as with the async API: plain ``def`` methods run in the server's thread pool, ``async def``
ones on the background loop.

::

    import relaybus.sync

    with relaybus.sync.connect("memory://") as bus:
        with bus.rpc_server(Target(topic="compute", server="h1"), [ComputeAPI()]):
            bus.rpc_client(Target(topic="compute")).call({}, "run_instance", instance_id=1)

Rules of the facade:

- **Never from an event loop.** A blocking method called from a thread that runs an event
  loop (inside ``async def`` code, or on the facade's own loop thread, e.g. from an
  ``async def`` endpoint) raises :class:`BlockingCallInEventLoop` (a ``RuntimeError``) at
  once: waiting there would stall that loop, or deadlock on the facade's own. Use the async
  API from async code; plain ``def`` endpoints may use the facade freely.
- **Exit without close().** When the interpreter exits, buses that were not closed are
  closed for you before threads are joined: servers and listeners stop taking messages and
  the handlers still running get their ``drain_timeout`` (all of them at once, not one
  after the other); then transports get :data:`EXIT_CLOSE_TIMEOUT` seconds to close and
  whatever task is left is cancelled and awaited, so the interpreter exits promptly and
  quietly (no "Task was destroyed but it is pending"). A ``def`` handler still running
  after its drain timeout cannot be stopped; the interpreter exits without waiting for
  its thread (a warning says so).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.thread  # imported now so that our exit hook runs before its own
import functools
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import relaybus
from relaybus import loops
from relaybus.lifecycle import Consuming
from relaybus.notify.notifier import Notifier
from relaybus.rpc.client import RPCClient
from relaybus.target import Target
from relaybus.threadsafe import LoopInbox, report

T = TypeVar("T")
LOG = logging.getLogger(__name__)

#: Seconds unclosed transports get to close when the interpreter exits (after the drain).
EXIT_CLOSE_TIMEOUT = 5.0
# Thread pools of servers and listeners name their threads after them: "relaybus.rpc[...]".
_HANDLER_THREAD_PREFIX = "relaybus."


class BlockingCallInEventLoop(RuntimeError):
    """A blocking ``relaybus.sync`` method was called from a thread running an event loop."""


def _register_exit_hook(hook: Callable[[], None]) -> None:
    """Run ``hook`` at exit before non-daemon threads are joined, else with ``atexit``.

    ``threading._register_atexit`` is what ``concurrent.futures`` uses for the same
    reason: plain ``atexit`` handlers run only after every thread pool has been joined,
    which is too late to bound a blocked handler.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(hook)
            return
        except RuntimeError:  # already shutting down
            return
    import atexit

    atexit.register(hook)


def _detach_threads(threads: list[threading.Thread]) -> None:
    """Let the interpreter exit without joining ``threads`` (best effort, CPython 3.11/3.12)."""
    queues = getattr(concurrent.futures.thread, "_threads_queues", None)
    locks = getattr(threading, "_shutdown_locks", None)
    locks_lock = getattr(threading, "_shutdown_locks_lock", None)
    for thread in threads:
        if queues is not None:
            queues.pop(thread, None)
        tstate_lock = getattr(thread, "_tstate_lock", None)
        if locks is not None and locks_lock is not None and tstate_lock is not None:
            with locks_lock:
                locks.discard(tstate_lock)


class _LoopThread:
    """The background event loop every sync object uses, and its orderly end at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: LoopInbox | None = None  # callers' threads hand work over through it
        self._thread: threading.Thread | None = None
        self._finished = False
        self._hooked = False
        self.buses: weakref.WeakSet[relaybus.Bus] = weakref.WeakSet()
        self.consumers: weakref.WeakSet[Consuming] = weakref.WeakSet()

    @property
    def finished(self) -> bool:
        """Whether the loop was shut down (the interpreter is exiting)."""
        return self._finished

    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and not self._finished:
            return loop  # running already: no lock for 64 sending threads to queue on
        with self._lock:
            if self._finished:
                raise RuntimeError("relaybus.sync has shut down: the interpreter is exiting")
            if self._loop is None:
                loop = loops.new_event_loop()  # uvloop where installed: relaybus.loops
                thread = threading.Thread(target=loop.run_forever, name="relaybus-sync-loop",
                                          daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                self._inbox = LoopInbox(loop)
                if not self._hooked:
                    self._hooked = True
                    _register_exit_hook(self.shutdown)
            return self._loop

    def check_thread(self) -> None:
        """Raise BlockingCallInEventLoop if this thread runs an event loop."""
        if self._thread is not None and threading.current_thread() is self._thread:
            raise BlockingCallInEventLoop(
                "a relaybus.sync method was called on the relaybus.sync loop thread (from an "
                "async def endpoint or callback); it would deadlock: use the async API there")
        if asyncio._get_running_loop() is None:  # the no-raise twin of get_running_loop
            return
        raise BlockingCallInEventLoop(
            "a relaybus.sync method was called from a thread running an event loop; it would "
            "block that loop: use the async API (await relaybus.connect(...)) in async code")

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        try:
            self.check_thread()
            loop = self.loop()
            inbox = self._inbox
            assert inbox is not None
        except BaseException:
            coro.close()
            raise
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        started: list[asyncio.Task[T]] = []
        inbox.post(_start, loop, coro, future, started)
        try:
            return future.result(timeout)
        except BaseException:
            # interrupted (Ctrl-C, timeout): leave nothing running behind
            if future.cancel():
                inbox.post(_cancel, started)
            raise

    def shutdown(self) -> None:
        """Close what is still open, bounded; then stop the loop (runs once, at exit)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            self._finished = True
        if loop is None or thread is None:
            return
        consumers = list(self.consumers)
        drains: list[float | None] = [c.drain_timeout for c in consumers]
        # drain_timeout=None asked to wait for handlers however long they take: honoured.
        limit = None if None in drains else max(
            [d for d in drains if d is not None], default=0.0) + EXIT_CLOSE_TIMEOUT + 2.0
        finish = asyncio.run_coroutine_threadsafe(self._finish(consumers, list(self.buses)),
                                                  loop)
        try:
            finish.result(limit)
        except Exception:  # exiting: report, never raise from an exit hook
            LOG.warning("relaybus.sync: could not close everything at exit", exc_info=True)
            return  # the loop may be blocked; it is a daemon thread, leave it
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=EXIT_CLOSE_TIMEOUT)
        if not thread.is_alive():
            loop.close()
        stuck = [t for t in threading.enumerate()
                 if t.name.startswith(_HANDLER_THREAD_PREFIX) and t.is_alive()]
        if stuck:
            LOG.warning("relaybus.sync: %d handler thread(s) still running after the drain "
                        "timeout; exiting without them: %s", len(stuck),
                        ", ".join(t.name for t in stuck))
            _detach_threads(stuck)

    @staticmethod
    async def _finish(consumers: list[Consuming], buses: list[relaybus.Bus]) -> None:
        for consumer in consumers:
            await _quietly(consumer.stop(), "stop " + consumer.name)
        # Drain every server and listener at once: the exit waits one drain timeout, not a sum.
        await asyncio.gather(*(_quietly(c.wait(), "drain " + c.name) for c in consumers))
        try:
            async with asyncio.timeout(EXIT_CLOSE_TIMEOUT):
                await asyncio.gather(*(_quietly(bus.close(), f"close {bus.url.masked()}")
                                       for bus in buses))
        except TimeoutError:
            LOG.warning("relaybus.sync: transports still closing after %s s at exit; "
                        "abandoned", EXIT_CLOSE_TIMEOUT)
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for task in rest:
            task.cancel()
        if rest:
            await asyncio.wait(rest, timeout=EXIT_CLOSE_TIMEOUT)
            for task in rest:  # retrieve, so that nothing reports "never retrieved"
                if task.done() and not task.cancelled():
                    task.exception()
        await asyncio.get_running_loop().shutdown_asyncgens()


async def _quietly(step: Coroutine[Any, Any, Any], what: str) -> None:
    try:
        await step
    except Exception:  # exiting: one failure must not stop the others
        LOG.warning("relaybus.sync: %s failed at exit", what, exc_info=True)


def _start(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T],
           future: concurrent.futures.Future[T], started: list[asyncio.Task[T]]) -> None:
    """On the loop: run ``coro`` as a task whose outcome goes to the caller's ``future``."""
    if future.cancelled():  # the caller gave up before the loop got to it
        coro.close()
        return
    task = loop.create_task(coro)
    started.append(task)
    task.add_done_callback(functools.partial(report, future))


def _cancel(started: list[asyncio.Task[Any]]) -> None:
    for task in started:
        task.cancel()


_runner = _LoopThread()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return _runner.run(coro)


class SyncRPCClient:
    """Blocking :class:`~relaybus.rpc.RPCClient`."""

    def __init__(self, client: RPCClient) -> None:
        self.client = client

    @property
    def target(self) -> Target:
        return self.client.target

    def prepare(self, **changes: Any) -> SyncRPCClient:
        return SyncRPCClient(self.client.prepare(**changes))

    def can_send_version(self, version: str | None = None) -> bool:
        return self.client.can_send_version(version)

    def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        """Invoke ``method`` on one server and return its result (blocks)."""
        return _run(self.client.call(ctxt, method, **kwargs))

    def cast(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        """Invoke ``method`` without waiting for its result."""
        _run(self.client.cast(ctxt, method, **kwargs))


class SyncConsumer:
    """Blocking start/stop/wait of an RPC server or notification listener."""

    def __init__(self, consumer: Consuming) -> None:
        self.consumer = consumer
        _runner.consumers.add(consumer)

    @property
    def running(self) -> bool:
        return self.consumer.running

    def start(self) -> None:
        _run(self.consumer.start())

    def stop(self) -> None:
        _run(self.consumer.stop())

    def wait(self) -> None:
        _run(self.consumer.wait())

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        self.wait()


class SyncNotifier:
    """Blocking :class:`~relaybus.notify.Notifier`."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    @property
    def captured(self) -> list[dict[str, Any]]:
        return self.notifier.captured

    def prepare(self, publisher_id: str | None = None, retry: int | None = None) -> SyncNotifier:
        return SyncNotifier(self.notifier.prepare(publisher_id, retry))

    def _send(self, priority: str, ctxt: Any, event_type: str, payload: Any) -> str:
        return str(_run(getattr(self.notifier, priority)(ctxt, event_type, payload)))

    def notify(self, priority: str, ctxt: Any, event_type: str, payload: Any, *,
               message_id: str | None = None, timestamp: str | None = None) -> str:
        return _run(self.notifier.notify(priority, ctxt, event_type, payload,
                                         message_id=message_id, timestamp=timestamp))

    def audit(self, ctxt: Any, event_type: str, payload: Any) -> str:
        return self._send("audit", ctxt, event_type, payload)

    def debug(self, ctxt: Any, event_type: str, payload: Any) -> str:
        return self._send("debug", ctxt, event_type, payload)

    def info(self, ctxt: Any, event_type: str, payload: Any) -> str:
        return self._send("info", ctxt, event_type, payload)

    def warn(self, ctxt: Any, event_type: str, payload: Any) -> str:
        return self._send("warn", ctxt, event_type, payload)

    warning = warn

    def error(self, ctxt: Any, event_type: str, payload: Any) -> str:
        return self._send("error", ctxt, event_type, payload)

    def critical(self, ctxt: Any, event_type: str, payload: Any) -> str:
        return self._send("critical", ctxt, event_type, payload)

    def sample(self, ctxt: Any, event_type: str, payload: Any) -> str:
        return self._send("sample", ctxt, event_type, payload)


class SyncBus:
    """Blocking :class:`~relaybus.Bus`; the same factory methods, blocking objects."""

    def __init__(self, bus: relaybus.Bus) -> None:
        self.bus = bus
        _runner.buses.add(bus)

    def rpc_client(self, target: Target, timeout: float | None = None,
                   version_cap: str | None = None, serializer: Any = None,
                   **options: Any) -> SyncRPCClient:
        return SyncRPCClient(self.bus.rpc_client(target, timeout, version_cap, serializer,
                                                 **options))

    def rpc_server(self, target: Target, endpoints: Sequence[object],
                   access_policy: Any = None, serializer: Any = None,
                   **options: Any) -> SyncConsumer:
        return SyncConsumer(self.bus.rpc_server(target, endpoints, access_policy, serializer,
                                                **options))

    def notifier(self, publisher_id: str | None = None,
                 topics: Sequence[str] = ("notifications",), driver: str = "messaging",
                 serializer: Any = None, retry: int | None = None) -> SyncNotifier:
        return SyncNotifier(self.bus.notifier(publisher_id, topics, driver, serializer, retry))

    def notification_listener(self, targets: Sequence[Target], endpoints: Sequence[object],
                              pool: str | None = None, **options: Any) -> SyncConsumer:
        return SyncConsumer(self.bus.notification_listener(targets, endpoints, pool, **options))

    def batch_notification_listener(self, targets: Sequence[Target],
                                    endpoints: Sequence[object], batch_size: int,
                                    batch_timeout: float | None = None,
                                    pool: str | None = None, **options: Any) -> SyncConsumer:
        return SyncConsumer(self.bus.batch_notification_listener(
            targets, endpoints, batch_size, batch_timeout, pool, **options))

    def close(self) -> None:
        """Stop servers and listeners, close the transport; idempotent.

        After the interpreter began exiting (an ``atexit`` handler, a ``__del__``) the bus
        was already closed by the exit hook, and this returns at once.
        """
        if _runner.finished:
            return
        _run(self.bus.close())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def connect(url: str | None = None, **options: Any) -> SyncBus:
    """Blocking :func:`relaybus.connect`."""
    return SyncBus(_run(relaybus.connect(url, **options)))
