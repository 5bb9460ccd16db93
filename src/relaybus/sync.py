"""Blocking versions of the bus objects, for threaded programs.

One event loop runs on a background thread (started on first use, shared by every sync
bus of the process); each blocking method runs its async twin there and waits for it.
Endpoint methods are the same as with the async API: plain ``def`` methods run in the
server's thread pool, ``async def`` ones on the background loop.

::

    import relaybus.sync

    with relaybus.sync.connect("memory://") as bus:
        with bus.rpc_server(Target(topic="compute", server="h1"), [ComputeAPI()]):
            bus.rpc_client(Target(topic="compute")).call({}, "run_instance", instance_id=1)
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import relaybus
from relaybus.lifecycle import Consuming
from relaybus.notify.notifier import Notifier
from relaybus.rpc.client import RPCClient
from relaybus.target import Target

T = TypeVar("T")


class _LoopThread:
    """The background event loop every sync object uses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="relaybus-sync-loop",
                                          daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(self.shutdown)
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        loop = self.loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a relaybus.sync method was called on the relaybus loop "
                               "thread itself; use the async API from async code")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def shutdown(self) -> None:
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)


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
        """Stop servers and listeners, close the transport; idempotent."""
        _run(self.bus.close())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def connect(url: str | None = None, **options: Any) -> SyncBus:
    """Blocking :func:`relaybus.connect`."""
    return SyncBus(_run(relaybus.connect(url, **options)))
