"""The executor's slots: at most max_concurrency handlers, waiters served in order, a
cancelled waiter never keeps or loses a slot."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from relaybus import eager
from relaybus.executor import Executor, _Slots


@pytest.mark.asyncio
async def test_submissions_beyond_the_limit_wait_in_order_and_none_is_lost() -> None:
    executor = Executor("test", max_concurrency=2)
    gates = [asyncio.Event() for _ in range(5)]
    started: list[int] = []

    def work(i: int) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            started.append(i)
            await gates[i].wait()
        return run

    await executor.submit(work(0))
    await executor.submit(work(1))
    waiting = [asyncio.create_task(executor.submit(work(i))) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    assert executor.in_flight == 2 and not any(t.done() for t in waiting)
    waiting[0].cancel()  # a waiter that gives up takes no slot with it
    await asyncio.sleep(0)
    gates[0].set()
    await asyncio.wait_for(waiting[1], 1)
    assert not waiting[2].done()
    gates[1].set()
    await asyncio.wait_for(waiting[2], 1)
    for gate in gates:
        gate.set()
    assert await executor.drain(1) == 0
    assert sorted(started) == [0, 1, 3, 4]
    for i in range(3):  # every slot came back
        await asyncio.wait_for(executor.submit(work(i)), 1)
    assert await executor.drain(1) == 0


@pytest.mark.asyncio
async def test_a_waiter_cancelled_as_it_is_handed_a_slot_passes_it_on() -> None:
    slots = _Slots(1)
    assert slots.take() and not slots.take()
    waiter = asyncio.create_task(slots.wait())
    await asyncio.sleep(0)
    slots.release()  # handed to the waiter...
    waiter.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.take()  # the slot was passed on, not lost


@pytest.mark.asyncio
async def test_tasks_cancelled_before_they_start_give_their_slots_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # only tasks started the usual way can be cancelled before their first step (where
    # eager tasks are not to be had): eager ones have taken it by the time anyone sees them
    monkeypatch.setattr(eager, "start", lambda coro, name:
                        asyncio.get_running_loop().create_task(coro, name=name))
    executor = Executor("test", max_concurrency=3)
    started: list[int] = []

    def work(i: int) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            started.append(i)
            await asyncio.Event().wait()
        return run

    for i in range(3):
        assert executor.try_submit(work(i))
    assert not executor.try_submit(work(3))  # no slot left: nothing started
    for task in asyncio.all_tasks():  # cancelled by someone before their first step
        if task.get_name().startswith("test["):
            task.cancel()
    assert await executor.drain(1) == 0
    assert started == [] and executor.in_flight == 0
    for i in range(3):  # every slot came back
        assert executor.try_submit(work(i))
    await asyncio.sleep(0)
    assert await executor.drain(0) == 3
    assert started == [0, 1, 2] and executor.in_flight == 0
    assert executor.try_submit(work(9))
    assert await executor.drain(0) == 1


async def test_drain_joins_the_threads_where_no_new_thread_can_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At exit Python 3.12+ refuses new threads, so ``asyncio.to_thread`` cannot join the
    handler threads; the drain joins them itself (they are idle), and says nothing."""
    import threading

    executor = Executor("exit", threads=2)

    def work() -> str:
        return threading.current_thread().name

    names = await asyncio.gather(*(executor.run(work) for _ in range(4)))
    workers = [t for t in threading.enumerate() if t.name in set(names)]
    assert workers

    async def refused(*args: object) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(asyncio, "to_thread", refused)
    assert await executor.drain(1.0) == 0
    assert not any(t.is_alive() for t in workers)
