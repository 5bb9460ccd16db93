"""The NATS driver's Resender: a reconnect restarts a waiting send; nothing else does."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relaybus.drivers.nats.resend import Resender


class FakeConnection:
    """Only what Resender uses: the reconnect callbacks."""

    def __init__(self) -> None:
        self.on_reconnect: set[Any] = set()

    def reconnect(self) -> None:
        for callback in list(self.on_reconnect):
            callback()


class Attempts:
    """Each attempt waits on a future of its own; records the timeout it was given."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []
        self.futures: list[asyncio.Future[str]] = []
        self.started = asyncio.Event()

    async def __call__(self, timeout: float) -> str:
        self.timeouts.append(timeout)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        self.started.set()
        return await future

    async def next_started(self) -> None:
        async with asyncio.timeout(5):
            await self.started.wait()
        self.started.clear()


async def started_send(connection: FakeConnection, attempts: Attempts) -> asyncio.Future[str]:
    """A send with a 30 s budget through a Resender on ``connection``, once its first
    attempt waits."""
    resender = Resender(connection)  # type: ignore[arg-type]
    send = asyncio.ensure_future(resender.send("a test send", "s", 30.0, attempts))
    await attempts.next_started()
    return send


async def test_a_reconnect_starts_the_send_again_within_its_budget() -> None:
    connection, attempts = FakeConnection(), Attempts()
    send = await started_send(connection, attempts)
    connection.reconnect()
    await attempts.next_started()
    assert attempts.futures[0].cancelled()
    attempts.futures[1].set_result("confirmed")
    assert await send == "confirmed"
    assert len(attempts.timeouts) == 2 and 0 < attempts.timeouts[1] <= attempts.timeouts[0]
    assert 29 < attempts.timeouts[0] <= 30.0
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_an_outside_cancel_still_cancels() -> None:
    connection, attempts = FakeConnection(), Attempts()
    send = await started_send(connection, attempts)
    send.cancel()
    with pytest.raises(asyncio.CancelledError):
        await send
    assert len(attempts.timeouts) == 1
    connection.reconnect()  # nothing waits any more: nothing to restart
    assert len(attempts.timeouts) == 1


async def test_an_outside_cancel_wins_over_a_reconnect_at_the_same_moment() -> None:
    connection, attempts = FakeConnection(), Attempts()
    send = await started_send(connection, attempts)
    connection.reconnect()
    send.cancel()
    with pytest.raises(asyncio.CancelledError):
        await send
    assert len(attempts.timeouts) == 1


async def test_an_attempts_error_ends_the_send() -> None:
    connection = FakeConnection()
    resender = Resender(connection)  # type: ignore[arg-type]

    async def refused(timeout: float) -> None:
        raise ConnectionRefusedError("nobody")

    with pytest.raises(ConnectionRefusedError):
        await resender.send("a test send", "s", 1.0, refused)


async def test_an_interrupt_the_attempt_swallowed_is_withdrawn() -> None:
    """Python 3.11's wait_for returns a result that came with a cancellation: the send
    ends well, and the task must not stay marked as cancelling (a later interrupt would
    then be taken for an outside cancel)."""
    connection = FakeConnection()
    resender = Resender(connection)  # type: ignore[arg-type]
    arrived, started = asyncio.Event(), asyncio.Event()

    async def swallowing(timeout: float) -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            arrived.set()
        return "confirmed anyway"

    async def sender() -> tuple[str, int]:
        result = await resender.send("a test send", "s", 30.0, swallowing)
        return result, asyncio.current_task().cancelling()  # type: ignore[union-attr]

    send = asyncio.ensure_future(sender())
    await started.wait()
    connection.reconnect()
    assert await send == ("confirmed anyway", 0)
    assert arrived.is_set()
