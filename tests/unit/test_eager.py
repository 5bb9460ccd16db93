"""Eagerly started tasks (relaybus.eager): the first step runs inside the call, and what
the coroutine sees is a task of its own, as if the loop had started it."""

import asyncio
import contextvars
from typing import Any

import pytest

from relaybus import eager
from relaybus.executor import Executor

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


@pytest.mark.asyncio
async def test_a_coroutine_that_does_not_suspend_is_done_when_start_returns() -> None:
    caller = asyncio.current_task()
    seen: list[Any] = []

    async def work() -> int:
        seen.append(asyncio.current_task())
        return 42

    task = eager.start(work(), "t-done")
    assert task.done() and task.result() == 42
    assert seen == [task] and seen[0] is not caller  # its own task, not the caller's
    assert asyncio.current_task() is caller  # the caller's is back
    assert task not in asyncio.all_tasks()  # never registered: it never waited
    assert task.get_name() == "t-done"  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_coroutine_that_suspends_goes_on_as_a_registered_task() -> None:
    gate = asyncio.Event()
    seen: list[Any] = []

    async def work() -> str:
        seen.append(asyncio.current_task())
        await gate.wait()
        seen.append(asyncio.current_task())
        return "resumed"

    task = eager.start(work(), "t-wait")
    assert not task.done() and seen == [task]
    assert task in asyncio.all_tasks()
    gate.set()
    assert await asyncio.wait_for(task, 1) == "resumed"
    assert seen == [task, task]


@pytest.mark.asyncio
async def test_a_timeout_inside_cancels_the_task_not_its_caller() -> None:
    async def work() -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()
        except TimeoutError:
            return "timed out"
        return "not reached"

    task = eager.start(work(), "t-timeout")
    assert await asyncio.wait_for(task, 1) == "timed out"
    await asyncio.sleep(0.02)  # the caller was not cancelled by the timeout's timer
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_a_task_runs_in_its_own_copy_of_the_callers_context() -> None:
    VAR.set("caller")
    seen: list[str] = []

    async def work() -> None:
        seen.append(VAR.get())
        VAR.set("task")
        await asyncio.sleep(0)
        seen.append(VAR.get())

    task = eager.start(work(), "t-context")
    assert VAR.get() == "caller"  # its set did not leak into the caller
    await task
    assert seen == ["caller", "task"] and VAR.get() == "caller"


@pytest.mark.asyncio
async def test_errors_and_cancellation_belong_to_the_task() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    failed = eager.start(fail(), "t-fail")
    assert isinstance(failed.exception(), ValueError)

    async def wait() -> None:
        await asyncio.Event().wait()

    waiting = eager.start(wait(), "t-cancel")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


@pytest.mark.asyncio
async def test_started_from_a_plain_callback_with_no_task_running() -> None:
    loop = asyncio.get_running_loop()
    result: asyncio.Future[Any] = loop.create_future()

    async def work() -> Any:
        return asyncio.current_task()

    def callback() -> None:
        task = eager.start(work(), "t-callback")
        result.set_result((task, task.result(), asyncio.current_task()))

    loop.call_soon(callback)
    task, inside, after = await asyncio.wait_for(result, 1)
    assert inside is task and after is None


@pytest.mark.asyncio
async def test_an_executor_handler_that_does_not_suspend_gives_its_slot_back_at_once() -> None:
    executor = Executor("test", max_concurrency=1)
    ran: list[int] = []

    def work(i: int) -> Any:
        async def run() -> None:
            ran.append(i)
        return run

    for i in range(3):  # one slot, and each handler ends inside try_submit
        assert executor.try_submit(work(i))
        assert executor.in_flight == 0
    assert ran == [0, 1, 2]
    assert await executor.drain(0) == 0


@pytest.mark.asyncio
async def test_the_executor_asks_for_a_loop_turn_every_max_concurrency_handlers() -> None:
    limit = 8
    executor = Executor("test", max_concurrency=limit)

    async def quick() -> None:
        pass

    def budgets(count: int) -> list[bool]:
        return [executor.try_submit(quick) and executor.turn_budget_left()
                for _ in range(count)]

    spent = [i for i, left in enumerate(budgets(2 * limit + 3)) if not left]
    assert spent == [limit - 1, 2 * limit - 1]  # once per max_concurrency in one turn
    await asyncio.sleep(0)  # the loop turned: a new budget, whatever was used
    executor.try_submit(quick)
    assert executor.turn_budget_left()
    await asyncio.sleep(0)
    assert all(budgets(limit - 1))
    one = Executor("one", max_concurrency=1)  # one at a time: one per turn
    assert [one.try_submit(quick) and one.turn_budget_left() for _ in range(3)] == [False] * 3


@pytest.mark.asyncio
async def test_a_task_that_cancels_itself_in_its_first_step_ends_cancelled() -> None:
    async def cancel_then_return() -> str:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        return "returned"

    returned = eager.start(cancel_then_return(), "t-self-cancel")
    assert returned.cancelled()  # as Task.__step has it: the cancel wins over the result

    reached: list[str] = []

    async def cancel_then_wait() -> None:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        try:
            await asyncio.Event().wait()  # the wait it suspends on is cancelled at once
        except asyncio.CancelledError:
            reached.append("cancelled in the wait")
            raise

    waiting = eager.start(cancel_then_wait(), "t-self-cancel-wait")
    assert not waiting.done() and waiting in asyncio.all_tasks()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 1)
    assert reached == ["cancelled in the wait"] and waiting.cancelled()


@pytest.mark.asyncio
async def test_done_callbacks_added_during_the_first_step_run() -> None:
    done = asyncio.get_running_loop().create_future()

    async def work() -> int:
        asyncio.current_task().add_done_callback(  # type: ignore[union-attr]
            lambda task: done.set_result(task.result()))
        return 7

    task = eager.start(work(), "t-callback-added")
    assert task.result() == 7
    assert await asyncio.wait_for(done, 1) == 7  # scheduled by the result, as set_result does


@pytest.mark.asyncio
async def test_an_error_keeps_its_own_traceback_and_keyboard_interrupt_propagates() -> None:
    async def fail() -> None:
        raise KeyError("deep")

    failed = eager.start(fail(), "t-error")
    error = failed.exception()
    assert isinstance(error, KeyError) and error.__traceback__ is not None
    import traceback
    frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    assert frames[-1] == "fail"

    async def interrupt() -> None:
        raise KeyboardInterrupt

    caller = asyncio.current_task()
    with pytest.raises(KeyboardInterrupt):
        eager.start(interrupt(), "t-interrupt")
    assert asyncio.current_task() is caller  # the caller is current again


@pytest.mark.asyncio
async def test_an_unretrieved_error_is_still_reported_when_its_task_is_dropped() -> None:
    import gc
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
    try:
        async def fail() -> None:
            raise ValueError("never retrieved")

        eager.start(fail(), "t-dropped-error")

        async def quiet() -> int:
            return 1

        eager.start(quiet(), "t-dropped-result")
        gc.collect()
        assert len(reported) == 1  # the error's task alone ("... exception was never retrieved")
        assert reported[0].endswith("exception was never retrieved")
    finally:
        loop.set_exception_handler(previous)
