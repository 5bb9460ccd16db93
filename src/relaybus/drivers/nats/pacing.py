"""Replies leave in batches of at most :data:`WRITE_BATCH`, not one burst's worth at once.

nats-py does not write a publish to the socket: it appends it to a buffer that its flusher
task writes out, and that task runs only when the task publishing lets the event loop turn.
A server's subscription task hands the requests of one read to their handlers one after
the other, and a handler that does not suspend has replied before the next request is
taken (:mod:`relaybus.eager`), so without pacing the replies to a burst of 64 calls all
left in one write after the last call was handled: the callers got nothing while the
server worked, then everything at once, and client and server took turns instead of
working at the same time.

The server's subscription task now lets the loop turn once :data:`WRITE_BATCH` replies
(or cast confirmations) were published since it last did, so the first replies are on their
way, and their callers busy with them, while the server handles the rest of the burst.
The first replies of a burst leave far sooner; its last requests are handled a few loop
turns later than before (one per 16 replies). The pause is only the subscription task's
own, and lets nats-py's reader take in the next read, as it did whenever the task ran out
of buffered requests.
"""

from __future__ import annotations

#: replies published before the subscription task lets the loop turn
#: (chosen by measurement: 8, 16 and 32 gave 1.3-1.5x the calls/s of one write per burst
#: with 64 callers on 2 cores; docs/performance.md)
WRITE_BATCH = 16


class WritePacer:
    """Counts the replies published since the subscription task last paused; says when
    to pause.

    The count is not reset when the loop turns on its own (tracking turns costs a loop
    callback per turn, more than it saves): a server answering one call at a time pauses
    once every ``batch`` calls, after the reply, which costs it one loop turn per
    ``batch`` calls and its callers nothing.

    Args:
        batch: how many replies make the subscription task pause.
    """

    __slots__ = ("_batch", "_written")

    def __init__(self, batch: int = WRITE_BATCH) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._batch = batch
        self._written = 0

    def wrote(self) -> None:
        """One more reply is in nats-py's buffer."""
        self._written += 1

    def due(self) -> bool:
        """Whether the subscription task should let the loop turn now (then the count
        starts again)."""
        if self._written < self._batch:
            return False
        self._written = 0
        return True
