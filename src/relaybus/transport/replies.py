"""Matching replies to waiting calls, for drivers that use one reply queue per bus.

Every call registers its ``_msg_id``; the driver's reply consumer hands each reply to
:meth:`PendingReplies.deliver`. A waiting call ends on its final reply, or with
MessagingTimeout when its timeout passes or when a call-monitor interval passes without a
heartbeat. Whatever ends the wait (reply, timeout, cancellation) removes the entry.

A *gathering* (:meth:`PendingReplies.register_gathering`, :meth:`PendingReplies.gather`)
is the other kind of entry: one request sent fanout, answered by every server that got it.
It keeps every final reply that arrives within its window, each once (a reply delivered
again, same ``_unique_id``, is dropped), with the time it took, up to a limit; heartbeats
are ignored and replies after the window are dropped like any late reply. A call's entry
is unchanged by this: it ends on the first final reply, and later ones are dropped.

Timeouts share one event-loop timer: each waiting call puts its deadline in a heap, and the
timer is armed for the earliest one. A call that ends before its deadline leaves its heap
entry behind (found finished when the timer comes, or swept once finished entries
outnumber the waiting calls), so a call costs a heap push instead of a timer of its own
(``call_later`` plus ``cancel``, whose handle is compared in Python on every heap move and
swept by the loop): the same precision, a fifth of the cost.

A reply can be there before the wait starts: on ``memory://`` a server whose handler does
not suspend answers inside the caller's publish (:mod:`relaybus.eager`). Such a call sets
no timer at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from typing import Any, NamedTuple

from relaybus.errors import MessagingTimeout, TransportError
from relaybus.message import Reply

LOG = logging.getLogger(__name__)

#: finished entries the deadline heap may hold beyond twice the waiting calls before a sweep
_SLACK = 64


class _Pending:
    __slots__ = ("future", "heartbeat", "msg_id", "timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, msg_id: str) -> None:
        self.future: asyncio.Future[Reply] = loop.create_future()
        self.heartbeat: asyncio.Event | None = None
        self.msg_id = msg_id
        self.timeout = 0.0

    def expire(self) -> None:
        if not self.future.done():
            self.future.set_exception(MessagingTimeout(
                f"Timed out after {self.timeout} s waiting for a reply to {self.msg_id}"))

class Answer(NamedTuple):
    """A reply gathered from one server, and how long after the send it arrived."""

    reply: Reply
    #: seconds from the request's registration (just before it was sent) to its arrival
    elapsed: float


class _Gathering:
    __slots__ = ("answers", "full", "limit", "seen", "started")

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.started = loop.time()
        self.limit = limit
        self.answers: list[Answer] = []
        self.seen: set[str] = set()
        #: done when the limit is reached (result) or the send failed (exception)
        self.full: asyncio.Future[None] = loop.create_future()

    def add(self, reply: Reply, now: float) -> None:
        if reply.is_heartbeat or self.full.done():
            return
        if reply.unique_id is not None:
            if reply.unique_id in self.seen:
                LOG.debug("dropping a repeated reply %s to %s", reply.unique_id, reply.msg_id)
                return
            self.seen.add(reply.unique_id)
        self.answers.append(Answer(reply, now - self.started))
        if len(self.answers) >= self.limit:
            self.full.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if not self.full.done():
            self.full.set_exception(exc)


class PendingReplies:
    """The calls of one bus that wait for a reply, by ``_msg_id``."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._gathering: dict[str, _Gathering] = {}
        # (deadline, tie-breaker, pending) of calls waiting with a timeout, earliest first
        self._deadlines: list[tuple[float, int, _Pending]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def __len__(self) -> int:
        return len(self._pending) + len(self._gathering)

    def register(self, msg_id: str) -> None:
        """Start waiting for ``msg_id``; call before the request is published."""
        self._pending[msg_id] = _Pending(asyncio.get_running_loop(), msg_id)

    def register_gathering(self, msg_id: str, limit: int) -> None:
        """Start gathering the replies to ``msg_id``, at most ``limit`` of them; call
        before the request is published (its time counts from here)."""
        if limit < 1:
            raise ValueError(f"a gathering keeps at least one reply, not {limit}")
        self._gathering[msg_id] = _Gathering(asyncio.get_running_loop(), limit)

    def discard(self, msg_id: str) -> None:
        """Stop waiting for ``msg_id`` (the send failed or was cancelled)."""
        self._pending.pop(msg_id, None)
        self._gathering.pop(msg_id, None)

    def deliver(self, reply: Reply) -> None:
        """Hand a received reply to its waiting call; replies nobody waits for are dropped."""
        pending = self._pending.get(reply.msg_id)
        if pending is None:
            gathering = self._gathering.get(reply.msg_id)
            if gathering is not None:
                gathering.add(reply, asyncio.get_running_loop().time())
                return
            LOG.debug("dropping reply for %s: no call is waiting for it", reply.msg_id)
            return
        if reply.is_heartbeat:
            if pending.heartbeat is not None:
                pending.heartbeat.set()
        elif not pending.future.done():
            # Old servers sent the outcome first (ending false), then a bare ending:
            # the first message that is not a heartbeat decides.
            pending.future.set_result(reply)

    def fail(self, msg_id: str, exc: BaseException) -> None:
        """End one waiting call with ``exc`` (its request came back undeliverable...)."""
        pending = self._pending.get(msg_id)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(exc)
        gathering = self._gathering.get(msg_id)
        if gathering is not None:
            gathering.fail(exc)

    def fail_all(self, exc: BaseException) -> None:
        """End every waiting call with ``exc`` (the connection is gone for good)."""
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(exc)
        self._pending.clear()
        for gathering in self._gathering.values():
            gathering.fail(exc)
        self._gathering.clear()
        self._deadlines.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, float("inf")

    async def gather(self, msg_id: str, window: float) -> list[Answer]:
        """The replies to ``msg_id`` that arrived within ``window`` seconds of its
        registration (fewer when the limit was reached first), in order of arrival.

        Raises:
            whatever :meth:`fail` ended the gathering with (the request came back
            undeliverable, the connection is gone).
        """
        gathering = self._gathering.get(msg_id)
        if gathering is None:
            raise TransportError(f"no gathering registered for {msg_id}")
        full = gathering.full
        try:
            left = gathering.started + window - asyncio.get_running_loop().time()
            if not full.done() and left > 0:
                # shielded: the window closing must not cancel what fail() may still set
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(full), left)
            if full.done() and not full.cancelled():
                full.result()  # raises what fail() set
            return list(gathering.answers)
        finally:
            self._gathering.pop(msg_id, None)
            full.cancel()

    async def wait(self, msg_id: str, timeout: float | None,
                   call_monitor_timeout: float | None = None) -> Reply:
        """Wait for the final reply of ``msg_id``.

        Raises:
            MessagingTimeout: ``timeout`` passed, or ``call_monitor_timeout`` passed with
                no heartbeat from the server.
        """
        pending = self._pending.get(msg_id)
        if pending is None:
            raise TransportError(f"no call registered for {msg_id}")
        try:
            if not call_monitor_timeout:
                if timeout is not None and not pending.future.done():
                    # cancelling the wait cancels the future: its entry is then finished
                    self._expire_at(pending, timeout)
                return await pending.future
            return await self._wait_monitored(msg_id, pending, timeout, call_monitor_timeout)
        finally:
            self._pending.pop(msg_id, None)

    def _expire_at(self, pending: _Pending, timeout: float) -> None:
        """Fail ``pending`` with MessagingTimeout ``timeout`` s from now, unless it ends."""
        loop = asyncio.get_running_loop()
        pending.timeout = timeout
        deadline = loop.time() + timeout
        heap = self._deadlines
        if len(heap) > 2 * len(self._pending) + _SLACK:  # mostly finished calls: sweep
            heap[:] = [entry for entry in heap if not entry[2].future.done()]
            heapq.heapify(heap)
        heapq.heappush(heap, (deadline, next(self._order), pending))
        if deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._expire_due, loop, deadline)
            self._timer_at = deadline

    def _expire_due(self, loop: asyncio.AbstractEventLoop, armed_at: float) -> None:
        """The timer: fail the calls whose deadline passed, re-arm for the next one."""
        self._timer, self._timer_at = None, float("inf")
        due = max(armed_at, loop.time())
        heap = self._deadlines
        while heap and (heap[0][0] <= due or heap[0][2].future.done()):
            heapq.heappop(heap)[2].expire()  # a finished call's entry is simply dropped
        if heap:
            self._timer_at = heap[0][0]
            self._timer = loop.call_at(self._timer_at, self._expire_due, loop, self._timer_at)

    async def _wait_monitored(self, msg_id: str, pending: _Pending, timeout: float | None,
                              call_monitor_timeout: float) -> Reply:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pending.heartbeat = asyncio.Event()
        while True:
            wait_for = call_monitor_timeout
            if deadline is not None:
                wait_for = min(wait_for, deadline - loop.time())
            pending.heartbeat.clear()
            heartbeat = asyncio.ensure_future(pending.heartbeat.wait())
            try:
                waiting: set[asyncio.Future[Any]] = {pending.future, heartbeat}
                done, _ = await asyncio.wait(waiting, timeout=max(wait_for, 0),
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                heartbeat.cancel()
            if pending.future in done:
                return pending.future.result()
            if deadline is not None and loop.time() >= deadline:
                raise MessagingTimeout(f"Timed out after {timeout} s waiting for a reply "
                                       f"to {msg_id}")
            if heartbeat not in done:
                raise MessagingTimeout(
                    f"No heartbeat for {call_monitor_timeout} s from the server handling "
                    f"{msg_id}: it is presumed dead"
                )
