"""The threads that run plain ``def`` handlers, handing results back to the loop.

``concurrent.futures.ThreadPoolExecutor`` costs a Future (a condition, notified on every
state change), a work item and a pure-Python semaphore round trip per call: with small
handlers that was most of what a server spent per message outside its own code. Here a
call is a list on a ``queue.SimpleQueue``; a worker runs it and posts the outcome to the
loop's :class:`~relaybus.threadsafe.LoopInbox`, which settles the task's waiter there.

Threads start on demand, up to ``size``, while more calls are in flight than threads
exist (counted on the loop, so the count needs no lock; a thread that finished but whose
result is not yet settled counts as busy, which can only start a thread early, never
leave a call waiting). They are named ``<name>_<n>`` and stop after :meth:`Workers.close`,
or when the interpreter exits (after the call they are running, as the standard pool's do).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

from relaybus.threadsafe import LoopInbox

_CANCELLED = 2  # index of a call's "cancelled before it started" flag


class Workers:
    """Up to ``size`` threads running calls for tasks on one event loop."""

    def __init__(self, name: str, size: int, inbox: LoopInbox) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one thread")
        self.name = name
        self._size = size
        self._inbox = inbox
        self._calls: queue.SimpleQueue[list[Any] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._in_flight = 0  # only touched on the loop
        self._closed = False
        _LIVE.add(self)

    def run(self, call: Callable[[], Any], waiter: asyncio.Future[Any]) -> list[Any]:
        """On the loop: run ``call()`` on a worker; ``waiter`` gets its outcome.

        Returns:
            The queued call, for :meth:`cancel`.

        Raises:
            RuntimeError: the pool is closed.
        """
        if self._closed:
            raise RuntimeError(f"{self.name}: the handler threads are stopped")
        item = [call, waiter, False]
        self._in_flight += 1
        waiter.add_done_callback(self._settled)
        self._calls.put(item)
        if self._in_flight > len(self._threads) and len(self._threads) < self._size:
            thread = threading.Thread(target=self._work,
                                      name=f"{self.name}_{len(self._threads)}")
            self._threads.append(thread)
            thread.start()
        return item

    @staticmethod
    def cancel(item: list[Any]) -> None:
        """A queued call that has not started never will (one already running goes on)."""
        if item:  # a started call's item is emptied by its worker
            item[_CANCELLED] = True

    def _settled(self, _: asyncio.Future[Any]) -> None:
        self._in_flight -= 1

    def _work(self) -> None:
        get, post = self._calls.get, self._inbox.post
        while True:
            item = get()
            if item is None:
                return
            call, waiter, cancelled = item
            item.clear()  # no reference to the call or its result outlives it here
            if cancelled:
                continue
            try:
                result = call()
            except BaseException as exc:  # noqa: BLE001 - it belongs to the waiting task
                post(_fail, waiter, exc)
                del exc
            else:
                post(_succeed, waiter, result)
                del result
            del call, waiter

    def close(self) -> list[threading.Thread]:
        """Cancel the calls not started; each thread ends after its current call.

        Returns:
            The threads, to join when every call has returned.
        """
        self._closed = True
        _LIVE.discard(self)
        threads, self._threads = self._threads, []
        while True:
            try:
                item = self._calls.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[_CANCELLED] = True
                waiter = item[1]
                waiter.get_loop().call_soon_threadsafe(waiter.cancel)
        for _ in threads:
            self._calls.put(None)
        return threads

    def _stop_at_exit(self) -> None:
        for _ in self._threads:
            self._calls.put(None)


def _succeed(waiter: asyncio.Future[Any], result: Any) -> None:
    if not waiter.done():
        waiter.set_result(result)


def _fail(waiter: asyncio.Future[Any], exc: BaseException) -> None:
    if not waiter.done():
        waiter.set_exception(exc)


_LIVE: weakref.WeakSet[Workers] = weakref.WeakSet()


def _exiting() -> None:
    """At exit, before threads are joined: idle workers end (busy ones after their call)."""
    for workers in list(_LIVE):
        workers._stop_at_exit()


threading._register_atexit(_exiting)  # type: ignore[attr-defined]  # as concurrent.futures
