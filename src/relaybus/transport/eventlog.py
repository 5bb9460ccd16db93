"""Event logs: append-only, retained records on the broker, readable from any offset.

A log is what a RabbitMQ stream queue or a JetStream stream is: every record gets the next
offset (a number that only grows, the same for every reader), records are kept for the
log's :class:`Retention` whoever has read them, and any number of readers read from any
offset they name. The firehose gateway keeps its replay buffer in one, so every gateway
instance gives an event the same id and a client resumes on any of them.

Drivers that have one answer :meth:`relaybus.transport.base.Driver.event_log`; the others
(memory://) raise :class:`~relaybus.errors.TransportError`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal, NamedTuple

DEFAULT_MAX_AGE = 24 * 3600.0
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024

Start = int | Literal["last", "next"]


@dataclass(frozen=True)
class Retention:
    """How long a log keeps its records: the older are deleted past either bound.

    Attributes:
        max_age: seconds a record is kept (at least 1).
        max_bytes: bytes the log may hold (at least 1 MiB); brokers delete whole segments,
            so a log may briefly hold a little more, and a record a little less long.
    """

    max_age: float = DEFAULT_MAX_AGE
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.max_age < 1:
            raise ValueError("a log's max age must be at least 1 second")
        if self.max_bytes < 1024 * 1024:
            raise ValueError("a log's max bytes must be at least 1 MiB")


class Record(NamedTuple):
    """One record: its offset in the log and its body."""

    offset: int
    body: bytes


class EventLog(abc.ABC):
    """One log on the broker (created on first use with its retention)."""

    name: str

    @abc.abstractmethod
    async def append(self, body: bytes) -> None:
        """Add a record; returns once the broker has it.

        Raises:
            TransportError: the broker did not take it (the caller may retry).
        """

    @abc.abstractmethod
    def read(self, start: Start) -> AsyncGenerator[Record, None]:
        """The records from ``start`` on, in order, waiting for new ones (until closed).

        ``start`` is an offset (a record older than the retention is gone: reading starts
        at the oldest kept), ``"last"`` (the newest record or the last few, then on) or
        ``"next"`` (only records appended from now on).

        Raises:
            TransportError: the connection was lost (read again from the next offset).
        """

    @abc.abstractmethod
    async def delete(self) -> None:
        """Delete the log and every record (for tests and tear-down)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release what the log holds open (not the records); idempotent."""

