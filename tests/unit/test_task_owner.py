"""The one owner of a driver's background tasks (relaybus.transport.tasks)."""

from __future__ import annotations

import asyncio
import logging

import pytest

import relaybus
from relaybus.transport.tasks import TaskOwner


async def test_a_finished_task_is_let_go_and_a_failed_one_logged_by_name(
        caplog: pytest.LogCaptureFixture) -> None:
    owner = TaskOwner("relaybus[test]")

    async def fail() -> None:
        raise ValueError("boom")

    ok = owner.spawn(asyncio.sleep(0, "done"), name="relaybus[test].ok")
    bad = owner.spawn(fail(), name="relaybus[test].bad")
    assert len(owner) == 2
    assert await ok == "done"
    await asyncio.wait([bad])
    await asyncio.sleep(0)  # done callbacks run on the next loop turn
    assert len(owner) == 0
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failed] == [
        "relaybus[test]: background task relaybus[test].bad failed"]
    assert failed[0].exc_info is not None and failed[0].exc_info[1] is bad.exception()


async def test_close_cancels_what_is_left_and_names_it() -> None:
    owner = TaskOwner("relaybus[test]")
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    task = owner.spawn(forever(), name="relaybus[test].forever")
    await asyncio.sleep(0)
    assert await owner.close() == ["relaybus[test].forever"]
    assert task.cancelled() and cancelled.is_set() and len(owner) == 0
    assert await owner.close() == []  # idempotent


async def test_a_closed_owner_starts_nothing() -> None:
    owner = TaskOwner("relaybus[test]")
    await owner.close()
    coro = asyncio.sleep(1)
    with pytest.raises(RuntimeError, match="closed; cannot start late"):
        owner.spawn(coro, name="late")
    assert coro.cr_frame is None  # closed, so no "never awaited" warning


async def test_a_task_that_ignores_cancellation_is_reported_not_waited_for(
        caplog: pytest.LogCaptureFixture) -> None:
    owner = TaskOwner("relaybus[test]")
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    task = owner.spawn(stubborn(), name="relaybus[test].stubborn")
    await asyncio.sleep(0)
    assert await owner.close(grace=0.05) == ["relaybus[test].stubborn"]
    assert "did not end within 0.1 s of being cancelled: relaybus[test].stubborn" in caplog.text
    release.set()
    await task


async def test_a_closed_bus_leaves_its_driver_owning_nothing() -> None:
    async with await relaybus.connect("memory://task_owner") as bus:
        pass
    assert len(bus.driver.tasks) == 0
    with pytest.raises(RuntimeError):
        bus.driver.tasks.spawn(asyncio.sleep(0), name="after-close")


async def test_what_close_cancelled_is_remembered() -> None:
    owner = TaskOwner("relaybus[test]")
    owner.spawn(asyncio.Event().wait(), name="relaybus[test].left")
    await owner.close()
    assert owner.left_at_close == ["relaybus[test].left"]
