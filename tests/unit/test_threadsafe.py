"""Handing callbacks from threads to the loop in bursts (relaybus.threadsafe)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from relaybus.threadsafe import LoopInbox


async def test_callbacks_from_many_threads_all_run_in_each_threads_order() -> None:
    loop = asyncio.get_running_loop()
    inbox = LoopInbox(loop)
    seen: list[tuple[int, int]] = []
    all_in = asyncio.Event()
    threads, each = 16, 500

    def record(thread: int, n: int) -> None:
        seen.append((thread, n))
        if len(seen) == threads * each:
            all_in.set()

    def post_all(thread: int) -> None:
        for n in range(each):
            inbox.post(record, thread, n)

    workers = [threading.Thread(target=post_all, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    await asyncio.wait_for(all_in.wait(), 30)
    for worker in workers:
        worker.join()
    for thread in range(threads):
        assert [n for t, n in seen if t == thread] == list(range(each))


async def test_a_burst_wakes_the_loop_once() -> None:
    loop = asyncio.get_running_loop()
    inbox = LoopInbox(loop)
    wakeups = 0
    original = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal wakeups
        wakeups += 1
        return original(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        ran: list[int] = []
        done = asyncio.Event()
        thread = threading.Thread(target=lambda: [inbox.post(ran.append, n) for n in range(1000)]
                                  + [inbox.post(done.set)])
        thread.start()  # the loop is busy in this test until join: one drain takes all
        thread.join()
        await asyncio.wait_for(done.wait(), 10)
    finally:
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
    assert ran == list(range(1000))
    assert wakeups == 1


async def test_a_failing_callback_is_reported_and_the_rest_still_run() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    inbox = LoopInbox(loop)
    done = asyncio.Event()

    def boom() -> None:
        raise ValueError("boom")

    inbox.post(boom)
    inbox.post(done.set)
    await asyncio.wait_for(done.wait(), 10)
    assert [type(c["exception"]) for c in reported] == [ValueError]
