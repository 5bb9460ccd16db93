"""Handing work from other threads to an event loop, one wake-up per burst.

``loop.call_soon_threadsafe`` writes to the loop's self-pipe on every call: with 64 threads
casting through ``relaybus.sync`` (or 64 handler threads finishing), that is a system call
and a loop wake-up per message. :class:`LoopInbox` queues the callbacks instead and wakes
the loop only when no wake-up is already pending; the loop then runs everything queued in
one go.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from collections.abc import Callable
from typing import Any


class LoopInbox:
    """Callbacks posted from any thread, run on ``loop`` in the order posted."""

    __slots__ = ("_loop", "_queue", "_waking")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = \
            collections.deque()
        self._waking = False

    def post(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` soon on the loop (thread-safe).

        Raises:
            RuntimeError: the loop is closed.
        """
        self._queue.append((callback, args))
        if not self._waking:
            # Set before waking: a poster that sees True knows a drain is pending that
            # has not started yet (the drain clears the flag before it takes anything).
            self._waking = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except BaseException:
                self._waking = False
                raise

    def _drain(self) -> None:
        self._waking = False
        queue = self._queue
        for _ in range(len(queue)):
            callback, args = queue.popleft()
            try:
                callback(*args)
            except Exception as exc:  # noqa: BLE001 - one failure must not drop the rest
                self._loop.call_exception_handler({
                    "message": f"relaybus: callback {callback!r} posted to the loop failed",
                    "exception": exc})


def report(future: concurrent.futures.Future[Any], task: asyncio.Future[Any]) -> None:
    """Give a waiting thread's ``future`` the outcome of ``task`` (finished on the loop)."""
    if task.cancelled():
        future.cancel()
        return
    if not future.set_running_or_notify_cancel():
        return
    exc = task.exception()
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(task.result())


def settle(waiter: asyncio.Future[Any], done: concurrent.futures.Future[Any]) -> None:
    """Give ``waiter`` (on its loop) the outcome of ``done`` (finished on a thread)."""
    if waiter.done():
        return
    if done.cancelled():
        waiter.cancel()
        return
    exc = done.exception()
    if exc is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(done.result())
