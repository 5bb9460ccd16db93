"""Running endpoint code for servers and listeners, bounded, and drained on stop.

``async def`` methods run on the event loop; plain ``def`` methods in a bounded thread
pool, so a blocking endpoint never stalls the loop. At most ``max_concurrency`` messages
are handled at once; the next delivery waits for a free slot, which is the backpressure
that keeps a fast producer from filling memory.

Each handler runs in a task of its own, started eagerly (:mod:`relaybus.eager`): its first
step runs inside the hand-over, so a handler that does not suspend is done, and its slot
free, before the consumer takes its next delivery. A consumer handing over many such
handlers in one loop turn is asked to let the loop turn every ``max_concurrency`` of them
(:meth:`Executor.turn_budget_left`), so buffered deliveries never starve other tasks.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from relaybus import eager
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
        self._tasks: set[asyncio.Future[None]] = set()
        self._count = 0
        self._inbox: LoopInbox | None = None  # handler threads report back through it
        self._is_async: dict[Callable[..., Any], bool] = {}
        self._this_turn = 0  # handlers started since the loop last turned (or a yield)
        self._turn_budget = max_concurrency

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def submit(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start ``work()`` in a task of its own once a slot is free."""
        slots = self._slots
        if not slots.take():
            await slots.wait()
        self._start(work)

    def try_submit(self, work: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Start ``work()`` in a task of its own if a slot is free now (and nobody waits
        for one); False, doing nothing, otherwise (then :meth:`submit` waits for one)."""
        if not self._slots.take():
            return False
        self._start(work)
        return True

    def _start(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start ``work()`` in a task holding the slot just taken. The task's first step
        runs now (:mod:`relaybus.eager`): a handler that never suspends is done when this
        returns, with no loop turn, and its slot free again; one that suspends keeps its
        slot until it ends."""
        self._count += 1
        self._this_turn += 1
        if self._this_turn == 1:
            asyncio.get_running_loop().call_soon(self._turned)
        try:
            task = eager.start(work(), f"{self.name}[{self._count}]")
        except BaseException:  # KeyboardInterrupt from its step, or no loop to run on
            self._slots.release()
            raise
        if task.done():
            self._slots.release()
        else:
            self._tasks.add(task)
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    def _turned(self) -> None:
        self._this_turn = 0

    def turn_budget_left(self) -> bool:
        """Whether the consumer that just handed over a message may hand over the next one
        without letting the event loop turn: False once per ``max_concurrency`` handlers
        started within one turn. Eager tasks that finish at once never suspend anyone, so a
        consumer whose deliveries are buffered would otherwise keep the loop (and every
        other task: timers, writers, other consumers) waiting until its buffer is empty;
        with tasks started the usual way, ``max_concurrency`` was as many as one turn could
        start, and it still is (a listener limited to one at a time, as the firehose's tap
        is, hands over one per turn).
        """
        if self._this_turn < self._turn_budget:
            return True
        self._this_turn = 0
        return False

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
        if self._pool is not None:
            pool, self._pool = self._pool, None
            threads = pool.close()
            if not cancelled:  # every handler returned: join the idle threads, so none
                # outlives stop (a cancelled handler may still run on its thread: not then)
                try:
                    await asyncio.to_thread(_join, threads)
                except RuntimeError:  # no new thread for that now (Python 3.12+ at exit):
                    _join(threads)  # they are idle and told to end, so this is brief
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
