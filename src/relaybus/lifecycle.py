"""Start, stop and drain: the life of an RPC server or a notification listener."""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Self

from relaybus.errors import ServerError
from relaybus.executor import Executor
from relaybus.transport.base import HANDED_OFF, Subscription

LOG = logging.getLogger(__name__)


class Consuming(abc.ABC):
    """Something that consumes from the transport and handles what it gets in an executor.

    Use it as ``async with x:`` or with :meth:`start`, :meth:`stop` and :meth:`wait`.
    Stopping takes no new messages; :meth:`wait` lets the ones received finish for up to
    ``drain_timeout`` seconds, then cancels the rest.
    """

    def __init__(self, name: str, *, max_concurrency: int, threads: int,
                 drain_timeout: float) -> None:
        if drain_timeout is not None and drain_timeout < 0:
            raise ValueError("drain_timeout must be zero or more seconds")
        self._name = name
        self._executor_args = {"max_concurrency": max_concurrency, "threads": threads}
        Executor(name, **self._executor_args)  # validate the limits now, not at start()
        self._executor: Executor | None = None
        self._drain_timeout = drain_timeout
        self._subscription: Subscription | None = None
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        """Its name, as used for its tasks and threads (``relaybus.rpc[topic.server]``...)."""
        return self._name

    @property
    def drain_timeout(self) -> float:
        """How long :meth:`wait` lets received messages finish before cancelling them."""
        return self._drain_timeout

    @property
    def running(self) -> bool:
        """Whether it is taking new messages."""
        return self._subscription is not None

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            raise ServerError(f"{self._name} is not running")
        return self._executor

    def _hand_over(self, work: Callable[[], Coroutine[Any, Any, None]]) -> Awaitable[None]:
        """Run ``work()`` in the executor, for the driver's handler to return.

        :data:`HANDED_OFF` when it started at once (the driver need not await anything);
        otherwise an awaitable the driver awaits before its next delivery: the wait for a
        free slot, or one loop turn once its turn's budget is spent
        (:meth:`Executor.turn_budget_left`).
        """
        # the attribute read first: this runs per message (the property raises when not running)
        executor = self._executor if self._executor is not None else self.executor
        if executor.try_submit(work):
            return HANDED_OFF if executor.turn_budget_left() else asyncio.sleep(0)
        return executor.submit(work)

    @abc.abstractmethod
    async def _subscribe(self) -> Subscription:
        """Start consuming from the transport."""

    async def _before_drain(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Hook: hand over anything held back before the executor drains."""

    async def start(self) -> None:
        """Start taking messages; a no-op if already running."""
        async with self._lock:
            if self._subscription is not None:
                return
            if self._executor is None:
                self._executor = Executor(self._name, **self._executor_args)
            self._subscription = await self._subscribe()

    async def stop(self) -> None:
        """Stop taking new messages (those received still run); idempotent."""
        async with self._lock:
            subscription, self._subscription = self._subscription, None
            if subscription is not None:
                await subscription.stop()

    async def wait(self) -> None:
        """Wait for work in progress, up to ``drain_timeout``; then cancel what remains."""
        if self._subscription is not None:
            raise ServerError("wait() needs stop() first")
        await self._before_drain()
        executor = self._executor
        if executor is not None:
            cancelled = await executor.drain(self._drain_timeout)
            if self._executor is executor and self._subscription is None:
                self._executor = None
            if cancelled:
                LOG.warning("%s: %d message(s) still in progress after %s s were cancelled",
                            self._name, cancelled, self._drain_timeout)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
        await self.wait()
