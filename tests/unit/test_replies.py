"""PendingReplies: every wait ends on its reply or at its own timeout, with one shared timer."""

from __future__ import annotations

import asyncio

import pytest

from relaybus import MessagingTimeout, TransportError
from relaybus.message import Reply
from relaybus.transport.replies import PendingReplies


async def _wait(replies: PendingReplies, msg_id: str, timeout: float | None) -> Reply:
    replies.register(msg_id)
    try:
        return await replies.wait(msg_id, timeout)
    finally:
        replies.discard(msg_id)


async def test_a_short_timeout_after_a_long_one_fires_on_time() -> None:
    replies = PendingReplies()
    loop = asyncio.get_running_loop()
    long = loop.create_task(_wait(replies, "long", 30))
    await asyncio.sleep(0)
    started = loop.time()
    with pytest.raises(MessagingTimeout, match=r"after 0\.05 s waiting for a reply to short"):
        await _wait(replies, "short", 0.05)
    assert 0.05 <= loop.time() - started < 5
    assert not long.done()
    replies.deliver(Reply(msg_id="long", result=1, ending=True))
    assert (await long).result == 1


async def test_each_of_many_timeouts_fires_once_at_its_deadline() -> None:
    replies = PendingReplies()
    loop = asyncio.get_running_loop()
    started = loop.time()
    timeouts = [0.09, 0.03, 0.06, 0.03]
    results = await asyncio.gather(*(_wait(replies, f"m{i}", t)
                                     for i, t in enumerate(timeouts)), return_exceptions=True)
    assert all(isinstance(r, MessagingTimeout) for r in results)
    assert 0.09 <= loop.time() - started < 5
    assert len(replies) == 0


async def test_answered_calls_leave_a_bounded_heap_and_no_timer_per_call() -> None:
    replies = PendingReplies()
    loop = asyncio.get_running_loop()
    timers_before = len(loop._scheduled)  # type: ignore[attr-defined]
    for n in range(1000):
        msg_id = f"call{n}"
        replies.register(msg_id)
        waiter = loop.create_task(replies.wait(msg_id, 60))
        await asyncio.sleep(0)
        replies.deliver(Reply(msg_id=msg_id, result=n, ending=True))
        assert (await waiter).result == n
    # answered calls are swept: the heap holds a few finished entries, not a thousand
    assert len(replies._deadlines) <= 2 * len(replies) + 65
    assert len(loop._scheduled) - timers_before <= 1  # type: ignore[attr-defined]


async def test_a_cancelled_wait_leaves_nothing_pending() -> None:
    replies = PendingReplies()
    replies.register("c")
    waiter = asyncio.get_running_loop().create_task(replies.wait("c", 60))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(replies) == 0


async def test_fail_all_ends_every_wait_and_the_timer() -> None:
    replies = PendingReplies()
    loop = asyncio.get_running_loop()
    waiters = [loop.create_task(_wait(replies, f"f{n}", 60)) for n in range(3)]
    await asyncio.sleep(0)
    replies.fail_all(TransportError("gone"))
    for waiter in waiters:
        with pytest.raises(TransportError):
            await waiter
    assert replies._timer is None and not replies._deadlines
