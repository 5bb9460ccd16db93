"""The pending-reply table: a call takes exactly one final reply; a gathering takes every
final reply within its window, each once, at most its limit."""

from __future__ import annotations

import asyncio

import pytest

from relaybus.errors import MessageUndeliverable, MessagingTimeout, TransportError
from relaybus.message import Reply, parse_reply
from relaybus.transport.replies import PendingReplies


def _reply(msg_id: str, result: object = "pong", unique_id: str | None = None,
           **fields: object) -> Reply:
    return Reply(msg_id=msg_id, result=result, ending=True, unique_id=unique_id, **fields)


async def test_a_call_takes_the_first_final_reply_only() -> None:
    replies = PendingReplies()
    replies.register("m1")
    replies.deliver(Reply(msg_id="m1", ending=False))  # a heartbeat decides nothing
    replies.deliver(_reply("m1", "first", "u1"))
    replies.deliver(_reply("m1", "second", "u2"))  # another server's, or a repeat: dropped
    assert (await replies.wait("m1", 5)).result == "first"
    assert len(replies) == 0
    replies.deliver(_reply("m1", "late", "u3"))  # nobody waits: dropped, nothing kept
    assert len(replies) == 0


async def test_a_gathering_keeps_every_answer_once_in_order() -> None:
    replies = PendingReplies()
    replies.register_gathering("g1", limit=10)
    replies.deliver(Reply(msg_id="g1", ending=False))  # heartbeat: not an answer
    replies.deliver(_reply("g1", "a", "u1"))
    replies.deliver(_reply("g1", "a", "u1"))  # the same reply delivered again
    replies.deliver(_reply("g1", "b", "u2"))
    replies.deliver(_reply("other", "x", "u3"))  # someone else's
    answers = await replies.gather("g1", 0.05)
    assert [a.reply.result for a in answers] == ["a", "b"]
    assert all(a.elapsed >= 0 for a in answers)
    assert answers[0].elapsed <= answers[1].elapsed
    assert len(replies) == 0
    replies.deliver(_reply("g1", "late", "u4"))  # after the window: dropped
    assert len(replies) == 0


async def test_a_gathering_stops_at_its_limit_without_waiting_for_the_window() -> None:
    replies = PendingReplies()
    replies.register_gathering("g1", limit=2)
    for n in range(5):
        replies.deliver(_reply("g1", n, f"u{n}"))
    async with asyncio.timeout(5):  # a window of an hour: only the limit can end it
        answers = await replies.gather("g1", 3600)
    assert [a.reply.result for a in answers] == [0, 1]


async def test_a_gathering_that_fails_raises_and_leaves_nothing() -> None:
    replies = PendingReplies()
    replies.register_gathering("g1", limit=2)
    waiting = asyncio.ensure_future(replies.gather("g1", 3600))
    await asyncio.sleep(0)
    replies.fail("g1", MessageUndeliverable(None, "nobody"))
    with pytest.raises(MessageUndeliverable):
        await waiting
    assert len(replies) == 0
    replies.register_gathering("g2", limit=2)
    replies.fail_all(TransportError("gone"))
    with pytest.raises(TransportError):
        await replies.gather("g2", 3600)
    assert len(replies) == 0


async def test_a_cancelled_gathering_leaves_nothing() -> None:
    replies = PendingReplies()
    replies.register_gathering("g1", limit=2)
    waiting = asyncio.ensure_future(replies.gather("g1", 3600))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(replies) == 0


async def test_calls_and_gatherings_side_by_side() -> None:
    replies = PendingReplies()
    replies.register("call")
    replies.register_gathering("all", limit=5)
    replies.deliver(_reply("all", "g", "u1"))
    replies.deliver(_reply("call", "c", "u2"))
    assert (await replies.wait("call", 5)).result == "c"
    assert [a.reply.result for a in await replies.gather("all", 0.01)] == ["g"]
    with pytest.raises(MessagingTimeout):
        replies.register("quiet")
        await replies.wait("quiet", 0.01)


async def test_bad_limits_and_unknown_gatherings() -> None:
    replies = PendingReplies()
    with pytest.raises(ValueError):
        replies.register_gathering("g", limit=0)
    with pytest.raises(TransportError):
        await replies.gather("never", 1)


def test_a_reply_keeps_its_unique_id() -> None:
    reply = parse_reply({"_msg_id": "m", "result": 1, "ending": True, "_unique_id": "u"})
    assert reply.unique_id == "u"
    assert parse_reply({"_msg_id": "m", "_unique_id": 5}).unique_id is None
