"""The hub: every event in, fanned out to every client and sink, never waiting on any of them.

Each client is a :class:`Subscriber` with a bounded queue of its own; the hub only ever
appends to it. A client too slow for the stream loses its *oldest* queued events, and the
next thing it is sent is a :class:`Dropped` report with the count (nats.py's slow-consumer
policy: bounded, drop, count, report). So a stuck client never slows the bus, the hub, or
any other client.

Events reach the clients in flushes: an event ingested is kept (replay buffer, sinks) at
once and queued for the subscribers at the next flush, all events since the last one
together (one pass over the subscribers, not one per event); the flush then wakes the
writers of the subscribers that got something, WAKE_CHUNK per turn of the event loop, and
the next flush waits for the end of that pass (and a pause after a big one: see
LINGER_PER_WAKE).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from relaybus.gateway.events import Event
from relaybus.gateway.replay import ReplayBuffer
from relaybus.gateway.topics import FilterSet


@dataclass(frozen=True, slots=True)
class Gap:
    """The client asked to resume after an event the replay buffer no longer holds.

    ``replayed`` counts the events replayed after the marker; when they come from the
    broker's log, as they are read, it counts the records the log holds up to the resume
    point before filtering (0 when not yet known).
    """

    since: str
    replayed: int
    oldest: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "gap", "since": self.since, "replayed": self.replayed,
                "oldest": self.oldest,
                "reason": "the replay buffer no longer holds that event (it was evicted, "
                          "or the gateway restarted): events may be missing here"}


@dataclass(frozen=True, slots=True)
class Dropped:
    """The client's queue overflowed: ``count`` oldest events were dropped since last told."""

    count: int
    total: int

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "dropped", "count": self.count, "total": self.total,
                "reason": "this client did not keep up; its oldest queued events were dropped"}


Item = Event | Gap | Dropped

DEFAULT_CLIENT_BYTES = 4 * 1024 * 1024
DIRECT_LIMIT = 256  # the most events wake() hands to a writer's direct path at once
HISTORY_BATCH = 256  # events read from the log ahead of what a resuming client took
# Waking writers: at once when one was woken last time; when more were, after a pause of
# LINGER_PER_WAKE for each (at most MAX_LINGER), so the events of that pause go out together
# (one write, one batched frame) instead of one wake-up and one write per event per client.
# At 1,000 clients, 5 ms against 10: browser p99 at 250 events/s 113 -> 73 ms, CPU per
# delivery 1.6 -> 2.1 us (docs/operations/firehose.md).
LINGER_PER_WAKE = 10e-6
MAX_LINGER = 0.005
WAKE_CHUNK = 256  # writers woken in one iteration of the event loop


class History(Protocol):
    """Where a resume older than the replay buffer reads from: the broker's log."""

    def catch_up(self, subscriber: Subscriber, since: int) -> None:
        """Hand ``subscriber`` (held) every event after offset ``since``, then release it."""


@dataclass(slots=True)
class Counters:
    """What /stats reports."""

    events_in: int = 0
    duplicates: int = 0
    events_out: int = 0
    dropped: int = 0
    stalled: int = 0  # clients let go because their writes stalled past the timeout
    started: float = field(default_factory=time.time)


class Subscriber:
    """One client's view of the stream: a replay backlog, then a bounded live queue.

    Args:
        name: for logs and /stats, e.g. ``ws[127.0.0.1:50312]``.
        filters: the topics it wants.
        max_queue: live events it may have waiting; beyond that its oldest are dropped.
        max_bytes: the same bound in bytes of encoded events (one huge event still fits).
        backlog: what it must get first (a gap marker, replayed events); not bounded by
            ``max_queue``, since the replay buffer bounds it already.
    """

    def __init__(self, name: str, filters: FilterSet, max_queue: int, backlog: list[Item],
                 counters: Counters, max_bytes: int = DEFAULT_CLIENT_BYTES,
                 waker: Callable[[Subscriber], None] | None = None) -> None:
        self.name = name
        self.filters = filters
        self.max_queue = max_queue
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self._backlog = collections.deque(backlog)
        self._queue: collections.deque[Event] = collections.deque()
        self._wakeup = asyncio.Event()
        # Live events wake the writer through ``waker`` (the hub's, which wakes many
        # writers at once, after a pause when busy); everything else wakes it at once.
        self._waker = waker or Subscriber.wake
        self._marked = False
        # The list the queue holds all of, when it holds exactly one flush's events (the
        # hub's, the same object for every subscriber): the frames of it are built once.
        self._shared: list[Event] | None = None
        self._waiting = False  # the writer waits in take()
        # Writes a batch of live events at once, without blocking, if it can (returns
        # whether it did); set by a writer that can (see wake()).
        self.direct: Callable[[list[Item]], bool] | None = None
        self._counters = counters
        self.dropped_total = 0
        self._dropped_unreported = 0
        self.sent = 0
        self.closed = False
        # Reading from the broker's log (see hold()): live events wait until it is done,
        # and none at or below ``floor`` (already replayed) is queued again.
        self.floor = -1
        self._held = False
        self._room = asyncio.Event()
        self._room.set()
        self.on_close: Callable[[], Any] | None = None
        if self._backlog:
            self._wakeup.set()

    @property
    def queued(self) -> int:
        return len(self._queue) + len(self._backlog)

    def offer(self, event: Event) -> None:
        """Queue ``event`` if wanted; never blocks (drops this client's oldest when full)."""
        self.offer_many([event])

    def offer_many(self, events: list[Event], size: int = -1) -> None:
        """Queue the wanted ``events`` (in order); never blocks: when the queue passes its
        bounds, this client's oldest events are dropped (the newest one is always kept).
        ``size``: the bytes of all ``events`` (-1: not known)."""
        if self.closed:
            return
        floor = self.floor
        if self.filters.everything and (floor < 0 or events[0].offset is None):
            wanted = events  # the usual case: every event, none read from the log already
            if size < 0:
                size = sum(len(event.json) for event in events)
        else:
            matches = self.filters.matches
            wanted = [event for event in events if matches(event.topic, event.levels)
                      and (event.offset is None or event.offset > floor)]
            if not wanted:
                return
            size = sum(len(event.json) for event in wanted)
        queue = self._queue
        self._shared = events if wanted is events and not queue else None
        queue.extend(wanted)
        self.queued_bytes += size
        if len(queue) > self.max_queue or self.queued_bytes > self.max_bytes:
            self._shared = None
            while len(queue) > 1 and (len(queue) > self.max_queue
                                      or self.queued_bytes > self.max_bytes):
                self.queued_bytes -= len(queue.popleft().json)
                self.dropped_total += 1
                self._dropped_unreported += 1
                self._counters.dropped += 1
        if not self._marked:
            self._marked = True
            self._waker(self)

    @property
    def held(self) -> bool:
        return self._held

    @property
    def first_queued_offset(self) -> int | None:
        """The log offset of the oldest live event waiting (None: none waits)."""
        return self._queue[0].offset if self._queue else None

    def hold(self, floor: int) -> None:
        """Keep live events back while what came before them is read from the log."""
        self._held = True
        self.floor = floor

    def add_history(self, item: Item) -> None:
        """Queue something read from the log (after what was added before)."""
        if self.closed:
            return
        if isinstance(item, Event) and item.offset is not None:
            self.floor = max(self.floor, item.offset)
            if not self.filters.matches(item.topic, item.levels):
                return
        self._backlog.append(item)
        if len(self._backlog) >= HISTORY_BATCH:
            self._room.clear()
        self._wakeup.set()

    async def room(self) -> None:
        """Wait until the client has taken most of what was read for it from the log."""
        await self._room.wait()

    def release(self) -> None:
        """The log is read: send the live events, less those the log already gave."""
        self._shared = None
        while self._queue and self._queue[0].offset is not None \
                and self._queue[0].offset <= self.floor:
            self.queued_bytes -= self._queue.popleft().size
        # Live events dropped while held were older than the first one kept: the log read
        # went on until it met that one, so the client got them after all.
        self._dropped_unreported = 0
        self._held = False
        self._room.set()
        self._wakeup.set()

    def close(self) -> None:
        """End the stream: the writer's next :meth:`take` returns nothing; frees the queue."""
        self.closed = True
        self._room.set()
        if self.on_close is not None:
            on_close, self.on_close = self.on_close, None
            on_close()
        self._queue.clear()
        self._shared = None
        self._backlog.clear()
        self.queued_bytes = 0
        self._wakeup.set()

    async def take(self, limit: int = 256) -> list[Item]:
        """Wait for what is next to send, up to ``limit`` items; [] once closed.

        A drop report comes before the (newer) events that survived the drop.
        """
        while True:
            if self.closed:
                return []
            if self._backlog:
                batch = [self._backlog.popleft()
                         for _ in range(min(limit, len(self._backlog)))]
                if len(self._backlog) < HISTORY_BATCH // 2:
                    self._room.set()
                return self._count(batch)
            if self._held:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._dropped_unreported:
                report = Dropped(self._dropped_unreported, self.dropped_total)
                self._dropped_unreported = 0
                return [report]
            if self._queue:
                queue = self._queue
                self._shared = None
                if len(queue) <= limit:  # the usual case: all of it
                    events = list(queue)
                    queue.clear()
                    self.queued_bytes = 0
                else:
                    events = [queue.popleft() for _ in range(limit)]
                    self.queued_bytes -= sum(len(event.json) for event in events)
                self.sent += len(events)
                self._counters.events_out += len(events)
                return cast(list[Item], events)  # a list of events is a list of items
            self._wakeup.clear()
            self._waiting = True
            try:
                await self._wakeup.wait()
            finally:
                self._waiting = False

    def wake(self) -> None:
        """Let the writer take what is waiting: written at once by ``direct`` when the
        writer waits idle with only live events to send and ``direct`` can write now (no
        task switch per client), else by waking the writer."""
        self._marked = False
        direct = self.direct
        if direct is not None and self._waiting and self._queue and not self._backlog \
                and not self._held and not self._dropped_unreported \
                and len(self._queue) <= DIRECT_LIMIT:
            shared = self._shared
            events = shared if shared is not None and len(shared) == len(self._queue) \
                else list(self._queue)
            if direct(cast(list[Item], events)):
                self._shared = None
                self._queue.clear()
                self.queued_bytes = 0
                self.sent += len(events)
                self._counters.events_out += len(events)
                return
        self._wakeup.set()

    def _count(self, batch: list[Item]) -> list[Item]:
        events = sum(1 for item in batch if isinstance(item, Event))
        self.sent += events
        self._counters.events_out += events
        return batch


class Hub:
    """Keeps the replay buffer and the subscribers; fans each event out at once.

    Args:
        replay: the replay buffer.
        client_queue: the bounded live queue size of each subscriber, in events.
        client_bytes: the same bound in bytes.
        history: the broker's log, when the replay is kept there; events then come with
            their log offsets (:meth:`ingest`'s ``offset``), a client resumes after an
            offset, and one older than the buffer is read from the log.
    """

    def __init__(self, replay: ReplayBuffer, client_queue: int = 1000,
                 client_bytes: int = DEFAULT_CLIENT_BYTES,
                 history: History | None = None) -> None:
        if client_queue < 1 or client_bytes < 1:
            raise ValueError("client_queue and client_bytes must be at least 1")
        self.replay = replay
        self.client_queue = client_queue
        self.client_bytes = client_bytes
        self.counters = Counters()
        self._subscribers: set[Subscriber] = set()
        self._sinks: list[Callable[[Event], None]] = []
        self._seq = itertools.count(1)
        self._closed = False
        self.history = history
        self.last_offset: int | None = None  # the newest log offset ingested
        self._pending: list[Event] = []  # ingested, not yet queued for the subscribers
        self._marked: list[Subscriber] = []  # writers to wake at the next flush
        self._waking: list[Subscriber] = []  # the rest of a flush's writers to wake
        self._flush_handle: asyncio.Handle | None = None
        self._linger = 0.0
        self._woken = 0  # writers the last flush woke
        self._flushing = False

    @property
    def subscribers(self) -> frozenset[Subscriber]:
        return frozenset(self._subscribers)

    def add_sink(self, sink: Callable[[Event], None]) -> None:
        """Also hand every event to ``sink`` (which must not block), e.g. the MQTT bridge."""
        self._sinks.append(sink)

    def known(self, event_id: str) -> bool:
        """Whether an event with this id is already in the replay buffer (a redelivery)."""
        return event_id in self.replay

    def ingest(self, event_id: str, topic: str, event_type: str, body: bytes,
               offset: int | None = None) -> Event | None:
        """Take one encoded event; None when it is a duplicate.

        Without ``offset``, a duplicate is an event whose id is in the buffer; with one
        (read from the broker's log), an offset at or below the newest ingested.
        """
        if offset is None:
            if event_id in self.replay:
                self.counters.duplicates += 1
                return None
        elif self.last_offset is not None and offset <= self.last_offset:
            self.counters.duplicates += 1
            return None
        else:
            self.last_offset = offset
        event = Event(next(self._seq), event_id, topic, event_type, body, offset)
        self.counters.events_in += 1
        self.replay.append(event)
        self._pending.append(event)  # for the subscribers, at the next flush
        self._schedule()
        for sink in self._sinks:
            sink(event)
        return event

    def subscribe(self, name: str, filters: FilterSet, since: str | None = None) -> Subscriber:
        """A new subscriber, given what it missed after ``since`` (or a gap marker).

        Taking the backlog and registering happen in one step of the event loop, so no
        event is both replayed and queued, and none falls between the two (the events
        ingested since the last flush are queued for the others first).
        """
        self._distribute()
        if since and self.history is not None:
            return self._subscribe_from_log(name, filters, since)
        backlog: list[Item] = []
        if since:
            missed = self.replay.after(since)
            if missed is None:
                backlog = self._gap(since, filters)
            else:
                backlog.extend(e for e in missed if filters.matches(e.topic, e.levels))
        return self._register(Subscriber(name, filters, self.client_queue, backlog,
                                         self.counters, self.client_bytes))

    def _gap(self, since: str, filters: FilterSet) -> list[Item]:
        """A gap marker, then every event the buffer holds that ``filters`` match."""
        wanted = [e for e in self.replay.all() if filters.matches(e.topic, e.levels)]
        return [Gap(since, len(wanted), wanted[0].cursor if wanted else None), *wanted]

    def _subscribe_from_log(self, name: str, filters: FilterSet, since: str) -> Subscriber:
        """Resume after a log offset (or an event id this gateway still holds)."""
        offset = int(since) if since.isdigit() and len(since) < 20 else None
        if offset is None:  # an event id: resumable only if held here
            known = self.replay.get(since)
            offset = known.offset if known is not None else None
        last = self.last_offset
        if offset is None or (last is not None and offset > last):
            # An id no longer held here, or an offset never in this log (a log since
            # deleted): as without a log, a gap marker and all the buffer holds.
            return self._register(Subscriber(name, filters, self.client_queue,
                                             self._gap(since, filters), self.counters,
                                             self.client_bytes))
        missed = self.replay.after(str(offset))
        if missed is not None:
            backlog: list[Item] = [e for e in missed if filters.matches(e.topic, e.levels)]
            return self._register(Subscriber(name, filters, self.client_queue, backlog,
                                             self.counters, self.client_bytes))
        subscriber = Subscriber(name, filters, self.client_queue, [], self.counters,
                                self.client_bytes)
        subscriber.hold(offset)
        self._register(subscriber)
        if not subscriber.closed:
            assert self.history is not None
            self.history.catch_up(subscriber, offset)
        return subscriber

    def _mark(self, subscriber: Subscriber) -> None:
        """Wake ``subscriber``'s writer at the next flush (see LINGER_PER_WAKE)."""
        self._marked.append(subscriber)
        self._schedule()

    def _schedule(self) -> None:
        """Flush soon, unless a flush is already due or under way."""
        if self._flush_handle is not None or self._flushing:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): nobody waits, flush now
            self._flush()
            return
        # After waking many, wait: the writers' pass takes one long loop iteration, so
        # waking again at once would wake them for each event; the pause lets the events
        # that come meanwhile go out together.
        self._flush_handle = (loop.call_later(self._linger, self._flush) if self._linger
                              else loop.call_soon(self._flush))

    def _distribute(self) -> None:
        """Queue the events ingested since the last time for every subscriber: one pass
        over the subscribers for all of them, not one per event."""
        pending = self._pending
        if pending:
            self._pending = []
            size = sum(len(event.json) for event in pending)
            for subscriber in self._subscribers:
                subscriber.offer_many(pending, size)

    def _flush(self) -> None:
        """Queue what was ingested and wake the writers that have something, WAKE_CHUNK
        at a time: a pass over thousands of writers lets the loop breathe in between
        (bus deliveries, requests, other clients), and the next flush waits for its end."""
        self._flush_handle = None
        self._flushing = True  # what is marked meanwhile waits for this flush's end
        try:
            # Events that came since the last chunk go to the writers still to be woken
            # in this pass too; those woken already are marked for the next one.
            self._distribute()
            if not self._waking:
                self._waking, self._marked = self._marked, []
                self._woken = len(self._waking)
            waking = self._waking
            while waking:
                chunk = waking[:WAKE_CHUNK]
                del waking[:WAKE_CHUNK]
                for subscriber in chunk:
                    subscriber.wake()
                if waking:
                    with contextlib.suppress(RuntimeError):  # no loop: all at once
                        self._flush_handle = asyncio.get_running_loop().call_soon(
                            self._flush)
                        return
        finally:
            self._flushing = False
        woken = self._woken
        self._linger = min(MAX_LINGER, woken * LINGER_PER_WAKE) if woken > 1 else 0.0
        if self._pending or self._marked:
            self._schedule()

    def _register(self, subscriber: Subscriber) -> Subscriber:
        subscriber._waker = self._mark
        if self._closed:
            subscriber.close()
        else:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscriber.close()
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every subscriber's stream (the gateway is stopping); idempotent."""
        self._closed = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._distribute()
        waking, self._waking, self._marked = self._waking + self._marked, [], []
        for subscriber in waking:
            subscriber.wake()
        for subscriber in list(self._subscribers):
            self.unsubscribe(subscriber)

    def stats(self) -> dict[str, Any]:
        """Counters for /stats."""
        c = self.counters
        return {
            "events_in": c.events_in,
            "events_out": c.events_out,
            "dropped": c.dropped,
            "stalled_clients_let_go": c.stalled,
            "duplicates": c.duplicates,
            "clients": len(self._subscribers),
            "replay": {"events": len(self.replay), "bytes": self.replay.bytes,
                       "evicted": self.replay.evicted, "max_events": self.replay.max_events,
                       "max_bytes": self.replay.max_bytes},
            "uptime_s": round(time.time() - c.started, 3),
        }
