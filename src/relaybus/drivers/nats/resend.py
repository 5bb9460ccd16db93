"""Sending again what a reconnect may have lost.

While it reconnects, nats-py keeps what it has not written yet and writes it to the new
server; but what it had already written to the old socket when the server went away is
gone, and nothing tells which messages those were. A send that waits for a confirmation
(a confirmed cast, a JetStream publish) therefore goes out again when the client
reconnects before its confirmation came, instead of waiting out ``send_timeout`` for an
answer that cannot come. Receivers drop the copy: JetStream by ``Nats-Msg-Id`` within its
duplicate window, an RPC server by ``_unique_id`` (a server of the same pool that did not
see the first copy runs it, as after any resent cast).

The waiting send is interrupted by cancelling its task with a marker (and un-cancelling
it): no task or event per send, which would cost more than the send itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from relaybus.drivers.nats.connection import Connection

LOG = logging.getLogger(__name__)

T = TypeVar("T")

# the least time an attempt made after a reconnect gets, even past the budget: enough
# for a confirmation that is already on its way
LAST_CHANCE = 0.05


class Resender:
    """Runs sends that start over when ``connection`` reconnects before they end."""

    def __init__(self, connection: Connection) -> None:
        self._waiting: dict[asyncio.Task[object], bool] = {}  # task -> interrupted by us
        connection.on_reconnect.add(self._interrupt)

    def _interrupt(self) -> None:
        for task, interrupted in list(self._waiting.items()):
            if not interrupted:
                self._waiting[task] = True
                task.cancel()

    async def send(self, kind: str, subject: str, budget: float,
                   attempt: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await attempt(*args, timeout)``, started again each time the client
        reconnects first (``kind`` and ``subject`` name the send in the log).

        All attempts share ``budget`` seconds (each gets what remains); the outcome of the
        attempt that ends, its error included, is the outcome of the send.
        """
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - drivers always run in tasks
            return await attempt(*args, budget)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        while True:
            self._waiting[task] = False
            try:
                result = await attempt(*args, max(deadline - loop.time(), LAST_CHANCE))
            except asyncio.CancelledError:
                if not self._waiting.pop(task, False) or task.uncancel() > 0:
                    raise  # cancelled by someone else
                LOG.info("the connection to NATS was re-established while %s to %s waited "
                         "for its confirmation; sending it again", kind, subject)
                continue
            except BaseException:
                self._settle(task)
                raise
            self._settle(task)
            return result

    def _settle(self, task: asyncio.Task[object]) -> None:
        """Forget ``task``; withdraw an interrupt the attempt swallowed as it ended (e.g.
        ``asyncio.wait_for`` returning a result that came with the cancellation), lest
        the task stay marked as cancelling."""
        if self._waiting.pop(task, False):
            task.uncancel()
