"""The replay buffer: the latest events, bounded by count and by bytes, found by id.

A client that reconnects names the last event id it saw (its cursor: see
:class:`~relaybus.gateway.events.Event`); the buffer hands back every event after it. When
that id is no longer (or never was) in the buffer, the client gets a gap marker and
everything the buffer still holds, or, when the replay is kept in the broker's log
(:mod:`relaybus.gateway.logreplay`), what the log still holds after it.
"""

from __future__ import annotations

import collections
import itertools

from relaybus.gateway.events import Event


class ReplayBuffer:
    """The newest events, oldest evicted first once ``max_events`` or ``max_bytes`` is passed.

    Args:
        max_events: at most this many events (at least 1).
        max_bytes: at most this many bytes of encoded events (the newest event is always
            kept, even when larger on its own).
    """

    def __init__(self, max_events: int = 10_000, max_bytes: int = 16 * 1024 * 1024) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("the replay buffer needs room for at least one event and byte")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: collections.deque[Event] = collections.deque()
        self._by_id: dict[str, Event] = {}
        self._by_cursor: dict[str, Event] = {}
        self.bytes = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._events)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._by_id

    def get(self, event_id: str) -> Event | None:
        """The newest event held with this (CloudEvent) id."""
        return self._by_id.get(event_id)

    @property
    def newest(self) -> Event | None:
        return self._events[-1] if self._events else None

    @property
    def oldest(self) -> Event | None:
        return self._events[0] if self._events else None

    def append(self, event: Event) -> None:
        """Keep ``event`` (its seq must follow the newest one's), evicting as needed."""
        self._events.append(event)
        self._by_id[event.id] = event
        self._by_cursor[event.cursor] = event
        self.bytes += event.size
        while len(self._events) > 1 and (len(self._events) > self.max_events
                                         or self.bytes > self.max_bytes):
            gone = self._events.popleft()
            self.bytes -= gone.size
            self.evicted += 1
            if self._by_id.get(gone.id) is gone:
                del self._by_id[gone.id]
            if self._by_cursor.get(gone.cursor) is gone:
                del self._by_cursor[gone.cursor]

    def after(self, cursor: str) -> list[Event] | None:
        """Every event after the one with ``cursor``, oldest first; None if it is not here."""
        anchor = self._by_cursor.get(cursor)
        if anchor is None or not self._events:
            return None
        start = anchor.seq - self._events[0].seq + 1
        return list(itertools.islice(self._events, start, None))

    def all(self) -> list[Event]:
        """Every event held, oldest first."""
        return list(self._events)
