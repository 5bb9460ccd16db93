"""``MessageHandlingServer``: oslo's start / stop / wait / reset over a relaybus consumer.

Every method may be called from any thread. ``start()`` twice is a no-op; ``wait()``
blocks until another thread has called ``stop()``, then until the messages in progress
are done, as oslo.messaging's servers do. Endpoint methods run on native threads, at most
``[DEFAULT] executor_thread_pool_size`` at once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import relaybus
from relaybus.oslo_messaging.exceptions import MessagingException
from relaybus.sync import SyncConsumer

__all__ = ["ExecutorLoadFailure", "MessageHandlingServer", "MessagingServerError",
           "ServerListenError"]

LOG = logging.getLogger(__name__)
EXECUTORS = ("threading", "eventlet")


class MessagingServerError(MessagingException, relaybus.ServerError):
    """Base class of the server errors."""


class ExecutorLoadFailure(MessagingServerError):
    """The executor asked for cannot be used."""

    def __init__(self, executor: Any, ex: BaseException | str) -> None:
        super().__init__(f'Failed to load executor "{executor}": {ex}')
        self.executor = executor
        self.ex = ex


class ServerListenError(MessagingServerError):
    """The server could not start listening on its target."""

    def __init__(self, target: Any, ex: BaseException) -> None:
        super().__init__(f"Failed to listen on target '{target}': {ex}")
        self.target = target
        self.ex = ex


def _eventlet_patched() -> bool:
    import sys

    patcher = sys.modules.get("eventlet.patcher")
    if patcher is None:
        return False
    return any(patcher.is_monkey_patched(m) for m in ("thread", "socket", "select"))


def check_executor(executor: str | None) -> str:
    """The executor name to use; eventlet fails at once where it would be in use.

    relaybus runs its event loop on a native background thread, which an
    eventlet-monkey-patched process cannot have. Without monkey patching, oslo's own
    eventlet executor has no green threads to switch to either, so the name is accepted
    and runs on native threads like ``threading`` (oslo's functional tests still pass it).

    Raises:
        ExecutorLoadFailure: an unknown executor, or eventlet in a monkey-patched process.
    """
    if executor is None:
        return "threading"
    if executor not in EXECUTORS:
        raise ExecutorLoadFailure(executor, "Executor should be None or 'eventlet' and "
                                  "'threading'")
    if executor == "eventlet" and _eventlet_patched():
        raise ExecutorLoadFailure(executor, "relaybus runs on native threads and cannot "
                                  "work in an eventlet-monkey-patched process; use "
                                  "executor='threading' and drop eventlet.monkey_patch()")
    return executor


class MessageHandlingServer:
    """Start, stop and wait of an RPC server or notification listener.

    Args:
        transport: the transport it consumes from.
        executor: ``threading`` (default) or ``eventlet`` (see :func:`check_executor`).
    """

    def __init__(self, transport: Any, executor: str | None = None) -> None:
        self.executor_type = check_executor(executor)
        self.transport = transport
        self.conf = transport.conf
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._consumer: SyncConsumer | None = None
        self._started = False

    def _make_consumer(self, pool_size: int) -> Any:
        raise NotImplementedError

    def _listen_target(self) -> Any:
        raise NotImplementedError

    def start(self, override_pool_size: int | None = None) -> None:
        """Start taking messages (no-op when already started).

        Raises:
            ServerListenError: the transport could not listen.
        """
        with self._lock:
            if self._started:
                return
            pool_size = override_pool_size or self.conf.executor_thread_pool_size
            try:
                consumer = self._make_consumer(pool_size)
                consumer.start()
            except (relaybus.TransportError, MessagingException) as exc:
                raise ServerListenError(self._listen_target(), exc) from exc
            self._consumer = consumer
            self._started = True
            self._stopped.clear()

    def stop(self) -> None:
        """Stop taking new messages; those in progress go on (see :meth:`wait`)."""
        with self._lock:
            consumer = self._consumer
            if consumer is not None and consumer.running:
                consumer.stop()
            self._started = False
            self._stopped.set()

    def wait(self) -> None:
        """Block until stopped (by another thread), then until running messages are done."""
        if self._consumer is None:
            return
        self._stopped.wait()
        with self._lock:
            consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.wait()

    def reset(self) -> None:
        """oslo.service's hook; nothing to reset here."""
