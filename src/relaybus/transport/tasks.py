"""The one owner of a driver's background tasks.

Every task a driver starts beside the caller's own (a reconnect loop, a consumer loop,
closing a channel in the background, a confirm sweeper, a memory queue's pump) is started
through its driver's :class:`TaskOwner`. The owner keeps a reference (an unreferenced task
may be garbage-collected while pending), logs a task that fails once, by name, instead of
"Task exception was never retrieved", and, when the bus closes, ends whatever is still
running after the driver's own close: :meth:`Bus.close` calls :meth:`TaskOwner.close`, so
no driver can leave a task behind, whatever its own clean-up forgot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

LOG = logging.getLogger(__name__)

T = TypeVar("T")

#: how long :meth:`TaskOwner.close` waits for cancelled tasks to end, in seconds
CANCEL_GRACE = 1.0


class TaskOwner:
    """Starts, keeps and finally ends the background tasks of one driver.

    Args:
        name: the driver's name, for log lines (``"relaybus[rabbit]"``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        #: the tasks :meth:`close` had to cancel (the driver's own close left them running)
        self.left_at_close: list[str] = []

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        """The names of the tasks still running, sorted."""
        return sorted(task.get_name() for task in self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run ``coro`` as a task named ``name``, owned until it ends.

        Raises:
            RuntimeError: the owner is closed (the driver was closed).
        """
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.name}: closed; cannot start {name}")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            LOG.error("%s: background task %s failed", self.name, task.get_name(),
                      exc_info=exc)

    async def close(self, grace: float = CANCEL_GRACE) -> list[str]:
        """Cancel every task still running and wait up to ``grace`` seconds for them.

        Idempotent. Returns the names of the tasks that had to be cancelled (a driver whose
        own close left nothing behind returns an empty list).
        """
        self._closed = True
        left = [task for task in self._tasks if task is not asyncio.current_task()]
        if not left:
            return []
        names = sorted(task.get_name() for task in left)
        self.left_at_close.extend(names)
        LOG.debug("%s: cancelling tasks left after close: %s", self.name, ", ".join(names))
        for task in left:
            task.cancel()
        _, pending = await asyncio.wait(left, timeout=grace)
        if pending:
            LOG.warning("%s: %d background task(s) did not end within %.1f s of being "
                        "cancelled: %s", self.name, len(pending), grace,
                        ", ".join(sorted(task.get_name() for task in pending)))
        return names
