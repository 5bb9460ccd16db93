"""Running endpoint code for servers and listeners, bounded, and drained on stop.

``async def`` methods run on the event loop; plain ``def`` methods in a bounded thread
pool, so a blocking endpoint never stalls the loop. At most ``max_concurrency`` messages
are handled at once; the next delivery waits for a free slot, which is the backpressure
that keeps a fast producer from filling memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from relaybus.threadsafe import LoopInbox
from relaybus.workers import Workers


class Executor:
    """Owns the tasks (and threads) that run one server's or listener's handlers."""

    def __init__(self, name: str, *, max_concurrency: int = 64, threads: int = 16) -> None:
        if max_concurrency < 1 or threads < 1:
            raise ValueError("max_concurrency and threads must be at least 1")
        self.name = name
        self._slots = _Slots(max_concurrency)
        self._threads = threads
        self._pool: Workers | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._count = 0
        self._inbox: LoopInbox | None = None  # handler threads report back through it
        self._is_async: dict[Callable[..., Any], bool] = {}

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def submit(self, work: Callable[[], Awaitable[None]]) -> None:
        """Start ``work()`` in a task of its own once a slot is free."""
        slots = self._slots
        if not slots.take():
            await slots.wait()
        self._start(work)

    def try_submit(self, work: Callable[[], Awaitable[None]]) -> bool:
        """Start ``work()`` in a task of its own if a slot is free now (and nobody waits
        for one); False, doing nothing, otherwise (then :meth:`submit` waits for one)."""
        if not self._slots.take():
            return False
        self._start(work)
        return True

    def _start(self, work: Callable[[], Awaitable[None]]) -> None:
        """Start ``work()`` in a task holding the slot just taken."""
        self._count += 1
        try:
            task = asyncio.get_running_loop().create_task(
                self._guarded(work), name=f"{self.name}[{self._count}]")
        except BaseException:
            self._slots.release()
            raise
        self._tasks.add(task)

    async def _guarded(self, work: Callable[[], Awaitable[None]]) -> None:
        # the task gives its slot back as it ends (a done callback would cost the loop
        # one more turn per message); a task cancelled before it started never gets here,
        # and drain() settles those
        try:
            await work()
        finally:
            self._finished(asyncio.current_task())

    def _finished(self, task: asyncio.Task[Any] | None) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
            self._slots.release()

    async def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``func``: awaited on the loop if async, else in the thread pool."""
        is_async = self._is_async.get(func)
        if is_async is None:  # endpoint methods are few and resolved once: remember
            is_async = inspect.iscoroutinefunction(func)
            if len(self._is_async) < 1024:
                self._is_async[func] = is_async
        if is_async:
            return await func(*args, **kwargs)
        loop = asyncio.get_running_loop()
        if self._pool is None:
            if self._inbox is None:
                self._inbox = LoopInbox(loop)
            self._pool = Workers(self.name, self._threads, self._inbox)
        call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
        waiter: asyncio.Future[Any] = loop.create_future()
        queued = self._pool.run(call, waiter)
        try:
            result = await waiter
        except asyncio.CancelledError:
            Workers.cancel(queued)  # not started yet: it never will be
            raise
        if inspect.isawaitable(result):
            result = await result
        return result

    async def drain(self, timeout: float | None) -> int:
        """Wait up to ``timeout`` for running work; cancel what remains.

        Returns:
            How many tasks had to be cancelled.
        """
        cancelled = 0
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
                cancelled += 1
            if pending:
                await asyncio.wait(pending)
            for task in [t for t in self._tasks if t.done()]:  # cancelled before they ran
                self._finished(task)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            threads = pool.close()
            if not cancelled:  # every handler returned: join the idle threads, so none
                # outlives stop (a cancelled handler may still run on its thread: not then)
                await asyncio.to_thread(_join, threads)
        return cancelled


class _Slots:
    """A semaphore whose uncontended acquire is one synchronous call (``take``);
    ``asyncio.Semaphore.acquire`` costs a coroutine and a scan of its waiters each time.
    Waiters are served in order; a released slot is handed to the first one."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take(self) -> bool:
        """Take a slot if one is free and nobody waits for one."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def wait(self) -> None:
        """Wait for a slot (handed over by :meth:`release`)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # it was handed a slot as it was cancelled: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()
