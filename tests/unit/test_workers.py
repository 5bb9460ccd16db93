"""relaybus.workers: handler threads that hand results back through the loop's inbox."""

from __future__ import annotations

import asyncio
import threading

import pytest

from relaybus.threadsafe import LoopInbox
from relaybus.workers import Workers


async def test_results_and_errors_reach_the_waiting_task_and_threads_stay_bounded() -> None:
    loop = asyncio.get_running_loop()
    workers = Workers("relaybus.test-workers", 3, LoopInbox(loop))
    release = threading.Event()
    names: set[str] = set()

    def job(n: int) -> int:
        names.add(threading.current_thread().name)
        release.wait(10)
        if n == 7:
            raise KeyError(n)
        return n * 2

    waiters = [loop.create_future() for _ in range(10)]
    for n, waiter in enumerate(waiters):
        workers.run(lambda n=n: job(n), waiter)  # type: ignore[misc]
    release.set()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert [o for n, o in enumerate(outcomes) if n != 7] == [n * 2 for n in range(10) if n != 7]
    assert isinstance(outcomes[7], KeyError)
    assert len(names) <= 3 and all(name.startswith("relaybus.test-workers_") for name in names)
    for thread in workers.close():
        await asyncio.to_thread(thread.join, 10)
        assert not thread.is_alive()


async def test_a_cancelled_call_that_has_not_started_never_runs() -> None:
    loop = asyncio.get_running_loop()
    workers = Workers("relaybus.test-workers", 1, LoopInbox(loop))
    started = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    def blocker() -> None:
        started.set()
        release.wait(10)
        ran.append("blocker")

    first = loop.create_future()
    workers.run(blocker, first)
    await asyncio.to_thread(started.wait, 10)
    second = loop.create_future()
    queued = workers.run(lambda: ran.append("second"), second)
    Workers.cancel(queued)
    second.cancel()
    third = loop.create_future()
    workers.run(lambda: ran.append("third"), third)
    release.set()
    await first
    await third
    assert ran == ["blocker", "third"]
    for thread in workers.close():
        await asyncio.to_thread(thread.join, 10)


async def test_close_cancels_what_has_not_started_and_refuses_more() -> None:
    loop = asyncio.get_running_loop()
    workers = Workers("relaybus.test-workers", 1, LoopInbox(loop))
    started = threading.Event()
    release = threading.Event()

    def blocker() -> str:
        started.set()
        release.wait(10)
        return "done"

    running = loop.create_future()
    workers.run(blocker, running)
    await asyncio.to_thread(started.wait, 10)
    queued = loop.create_future()
    workers.run(lambda: "never", queued)
    threads = workers.close()
    release.set()
    assert await running == "done"
    with pytest.raises(asyncio.CancelledError):
        await queued
    with pytest.raises(RuntimeError, match="stopped"):
        workers.run(lambda: None, loop.create_future())
    for thread in threads:
        await asyncio.to_thread(thread.join, 10)
        assert not thread.is_alive()
