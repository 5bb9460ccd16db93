"""Settling deliveries of one channel in as few frames as possible.

Deliveries are settled in any order (notification handlers finish when they finish), but
the broker is told in bulk: once per event-loop pass, the longest settled run at the front
goes out as one ``basic.ack(multiple=True)``; settled deliveries behind a gap (one still
being handled) are acknowledged one by one, so a slow handler never holds back the
prefetch window of the others. Rejections go out at once, one by one.
"""

from __future__ import annotations

import asyncio
import collections

from relaybus.drivers.rabbit.amqp import Channel

_PENDING, _ACKED, _SENT = 0, 1, 2


class AckBatcher:
    """The unsettled deliveries of one channel."""

    def __init__(self, channel: Channel, *, bulk: bool = True) -> None:
        self.channel = channel
        self._bulk = bulk
        self._order: collections.deque[int] = collections.deque()
        self._state: dict[int, int] = {}
        self._acked = 0
        self._scheduled = False
        self._loop = asyncio.get_running_loop()
        self._idle: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        """How many deliveries are not settled yet (acked-but-unsent ones included)."""
        return len(self._state)

    def received(self, tag: int) -> None:
        """Track a new delivery (tags grow with each delivery on a channel)."""
        self._order.append(tag)
        self._state[tag] = _PENDING

    def ack(self, tag: int) -> bool:
        """Acknowledge (sent with the next flush); False if it was settled already."""
        if self._state.get(tag) != _PENDING:
            return False
        self._state[tag] = _ACKED
        self._acked += 1
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)
        return True

    def reject(self, tag: int, *, requeue: bool) -> bool:
        """Give back (``requeue``) or drop / dead-letter a delivery, at once."""
        if self._state.get(tag) != _PENDING:
            return False
        self._state[tag] = _SENT
        self.channel.nack(tag, requeue=requeue)
        self._trim()
        return True

    def flush(self) -> None:
        """Send the acknowledgements recorded since the last flush."""
        self._scheduled = False
        if not self._acked:
            return
        highest = 0
        order, state = self._order, self._state
        while self._bulk and order and state[order[0]] != _PENDING:
            tag = order.popleft()
            if state.pop(tag) == _ACKED:
                highest = tag
        if highest:
            # multiple=True also covers earlier tags; those are all settled already.
            self.channel.ack(highest, multiple=True)
        for tag in order:
            if state[tag] == _ACKED:
                state[tag] = _SENT
                self.channel.ack(tag)
        self._acked = 0
        self._trim()

    def _trim(self) -> None:
        order, state = self._order, self._state
        while order and state[order[0]] == _SENT:
            del state[order.popleft()]
        if not state and self._idle:
            idle, self._idle = self._idle, []
            for future in idle:
                if not future.done():
                    future.set_result(None)

    async def settled(self) -> None:
        """Wait until every delivery tracked here is settled and sent."""
        if self._state:
            future = self._loop.create_future()
            self._idle.append(future)
            await future
