"""Slow-consumer drops, counted per subscription and logged once per interval.

When a subscription's handler falls behind, nats-py keeps what waits for it in a bounded
queue (512 Ki messages or 128 MiB by default) and drops what no longer fits, calling the
connection's error callback once per dropped message. :class:`SlowConsumerReport` turns
that stream into counters (:attr:`SlowConsumerReport.dropped`, by consumer) and at most one
WARNING line per consumer per :data:`LOG_INTERVAL` seconds: the first drop is reported at
once; the drops that follow within the interval are reported, with their count, when it
ends. Never one line per message.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

import nats.errors

LOG = logging.getLogger("relaybus.drivers.nats.consumers")

#: Seconds between two log lines about one consumer's drops.
LOG_INTERVAL = 60.0


def consumer_name(sub: Any) -> str:
    """The name of the consumer a nats-py subscription feeds (its task's, else its subject)."""
    task = getattr(sub, "_wait_for_msgs_task", None)
    if isinstance(task, asyncio.Task) and task.get_name().startswith("relaybus["):
        return task.get_name()
    subject = getattr(sub, "subject", "?")
    queue = getattr(sub, "queue", "")
    return f"{subject} (queue group {queue})" if queue else str(subject)


class SlowConsumerReport:
    """Counts slow-consumer drops per consumer; logs them once per interval."""

    def __init__(self, connection: str) -> None:
        self.connection = connection
        #: messages nats-py dropped so far, by consumer name
        self.dropped: collections.Counter[str] = collections.Counter()
        self._unreported: collections.Counter[str] = collections.Counter()
        self._reported_at: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def record(self, exc: nats.errors.SlowConsumerError) -> None:
        """One message was dropped (called from nats-py's error callback, on its loop)."""
        name = consumer_name(exc.sub)
        self.dropped[name] += 1
        self._unreported[name] += 1
        if name in self._timers:
            return  # a line is already due at the end of this interval
        last = self._reported_at.get(name)
        now = time.monotonic()
        if last is None or now - last >= LOG_INTERVAL:
            self._report(name)
        else:
            self._timers[name] = asyncio.get_running_loop().call_later(
                last + LOG_INTERVAL - now, self._report, name)

    def _report(self, name: str) -> None:
        self._timers.pop(name, None)
        count = self._unreported.pop(name, 0)
        if not count:
            return
        self._reported_at[name] = time.monotonic()
        LOG.warning("NATS slow consumer %s on %s: its handler fell behind and nats-py dropped "
                    "%d message(s) since the last report (%d in all)", name, self.connection,
                    count, self.dropped[name])

    def close(self) -> None:
        """Report what is still unreported, and stop the timers."""
        for name in list(self._timers):
            self._timers.pop(name).cancel()
        for name in list(self._unreported):
            self._report(name)
