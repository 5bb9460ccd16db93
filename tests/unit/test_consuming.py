"""Consuming (relaybus.lifecycle): hand-overs only while running."""

from __future__ import annotations

import pytest

from relaybus.errors import ServerError
from relaybus.lifecycle import Consuming
from relaybus.transport.base import HANDED_OFF, Subscription


class _Stub(Subscription):
    async def stop(self) -> None:
        pass


class _Consumer(Consuming):
    async def _subscribe(self) -> Subscription:
        return _Stub()


async def _nothing() -> None:
    pass


async def test_a_hand_over_needs_a_running_consumer() -> None:
    consumer = _Consumer("orders.s1", max_concurrency=4, threads=1, drain_timeout=1.0)
    with pytest.raises(ServerError, match=r"orders\.s1 is not running"):
        consumer._hand_over(_nothing)
    await consumer.start()
    assert consumer._hand_over(_nothing) is HANDED_OFF
    await consumer.stop()
    await consumer.wait()
    with pytest.raises(ServerError, match=r"orders\.s1 is not running"):
        consumer._hand_over(_nothing)
