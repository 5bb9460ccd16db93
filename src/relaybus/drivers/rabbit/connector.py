"""Keeping one connection to the first broker that answers, and bringing it back.

Hosts are tried in URL order. When the connection drops, a named task
(``relaybus[rabbit].reconnect``) tries them again, round after round, pausing between
rounds with capped exponential backoff and jitter so a fleet of clients does not stampede
a broker that comes back. Once connected again it runs the restore callbacks (reply
queue, consumers) before letting senders through. A refused login or virtual host is not
retried: it ends the transport with AuthenticationFailure.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from relaybus import telemetry
from relaybus.drivers.rabbit.amqp import Connection, ConnectParams, HandshakeRefused
from relaybus.drivers.rabbit.errors import translate
from relaybus.errors import (
    AuthenticationFailure,
    ConnectionFailure,
    MessagingError,
    TransportError,
)
from relaybus.transport.tasks import TaskOwner

LOG = logging.getLogger(__name__)

RestoreCallback = Callable[[Connection], Awaitable[None]]


class Connector:
    """The transport's connection, as long as it lives.

    Args:
        hosts: where to connect, in failover order.
        reconnect_delay: the first pause between rounds of attempts, in seconds.
        reconnect_delay_max: the cap of the doubling pause.
        name: for task names and logs.
    """

    def __init__(self, hosts: Sequence[ConnectParams], *, reconnect_delay: float,
                 reconnect_delay_max: float, name: str = "relaybus[rabbit]",
                 tasks: TaskOwner | None = None) -> None:
        if not hosts:
            raise ValueError("no host to connect to")
        #: the driver's task owner; every component on this connector starts tasks there
        self.tasks = tasks if tasks is not None else TaskOwner(name)
        self._hosts = list(hosts)
        self._delay = reconnect_delay
        self._delay_max = reconnect_delay_max
        self._name = name
        self._connection: Connection | None = None
        self._ready = asyncio.Event()
        self._fatal: MessagingError | None = None
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._restore: list[RestoreCallback] = []
        self._on_fatal: list[Callable[[MessagingError], None]] = []
        self.generation = 0
        self._reconnected_at: float | None = None

    @property
    def current(self) -> Connection | None:
        """The open connection, or None while (re)connecting."""
        connection = self._connection
        return connection if connection is not None and not connection.is_closed else None

    def reconnected_within(self, seconds: float) -> bool:
        """Whether the current connection is a reconnection made less than ``seconds`` ago.

        Right after a reconnection, peers are likely still restoring their own queues
        (a broker restart drops transient ones), so senders treat a return as "not yet".
        """
        return self._reconnected_at is not None and self.current is not None \
            and asyncio.get_running_loop().time() - self._reconnected_at < seconds

    def problem(self) -> str | None:
        """Why messages cannot flow now (see ``Driver.connection_problem``), or None."""
        if self._closed:
            return "the transport is closed"
        if self._fatal is not None:
            return f"gave up reconnecting: {self._fatal}"
        if self.current is None:
            return "broker connection lost; reconnecting"
        if not self._ready.is_set():
            return "reconnected; restoring queues and consumers"
        return None

    def add_restore(self, callback: RestoreCallback) -> None:
        """Run ``callback(connection)`` after every reconnection (not the first connect)."""
        self._restore.append(callback)

    def remove_restore(self, callback: RestoreCallback) -> None:
        if callback in self._restore:
            self._restore.remove(callback)

    def on_fatal(self, callback: Callable[[MessagingError], None]) -> None:
        """Call ``callback(error)`` when the transport gives up for good."""
        self._on_fatal.append(callback)

    async def start(self) -> None:
        """Connect to the first host that answers (one round, no retry loop).

        Raises:
            AuthenticationFailure: a broker refused the credentials or the virtual host.
            ConnectionFailure: no host could be reached.
        """
        connection = await self._one_round()
        self._adopt(connection)
        self._ready.set()

    async def _one_round(self) -> Connection:
        failures: list[str] = []
        last: BaseException | None = None
        for params in self._hosts:
            where = f"connecting to {params.host}:{params.port}"
            try:
                return await Connection.open(params)
            except HandshakeRefused as exc:
                raise translate(exc, where) from exc
            except (OSError, TimeoutError, MessagingError, Exception) as exc:  # noqa: BLE001
                failures.append(f"{params.host}:{params.port}: {exc or type(exc).__name__}")
                last = exc
        raise ConnectionFailure("cannot reach any RabbitMQ host: " + "; ".join(failures)) \
            from last

    def _adopt(self, connection: Connection) -> None:
        self._connection = connection
        self.generation += 1
        connection.closed.add_done_callback(lambda _: self._lost(connection))

    def _lost(self, connection: Connection) -> None:
        if self._closed or connection is not self._connection:
            return
        reason = connection.closed.result()
        LOG.warning("%s: connection lost (%s); reconnecting", self._name, reason)
        self._ready.clear()
        self._connection = None
        if self._task is None or self._task.done():
            self._task = self.tasks.spawn(self._reconnect(), name=f"{self._name}.reconnect")

    async def _reconnect(self) -> None:
        delay = self._delay
        while not self._closed:
            try:
                connection = await self._one_round()
            except AuthenticationFailure as exc:
                self._give_up(exc)
                return
            except ConnectionFailure as exc:
                pause = delay / 2 + random.uniform(0, delay / 2)
                LOG.info("%s: %s; next attempt in %.1f s", self._name, exc, pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, self._delay_max)
                continue
            self._adopt(connection)
            for callback in list(self._restore):
                try:
                    await callback(connection)
                except Exception:
                    LOG.exception("%s: restoring %r after reconnect failed", self._name,
                                  callback)
            if connection.is_closed:
                continue  # lost again while restoring: the next round starts at once
            LOG.info("%s: reconnected to %r", self._name, connection)
            self._reconnected_at = asyncio.get_running_loop().time()
            telemetry.count_reconnect("rabbit")
            self._ready.set()
            return

    def _give_up(self, exc: MessagingError) -> None:
        LOG.error("%s: giving up: %s", self._name, exc)
        self._fatal = exc
        self._ready.set()  # wake waiters so they see the fatal error
        for callback in self._on_fatal:
            callback(exc)

    async def connection(self, timeout: float | None) -> Connection:
        """The open connection, waiting up to ``timeout`` seconds while reconnecting.

        Raises:
            ConnectionFailure: still not connected after ``timeout``.
            AuthenticationFailure: the transport gave up after a refused login.
            TransportError: the transport is closed.
        """
        while True:
            connection = self.current
            if connection is not None and self._ready.is_set():
                return connection
            if self._fatal is not None:
                raise type(self._fatal)(str(self._fatal))
            if self._closed:
                raise TransportError("the rabbit transport is closed")
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                raise ConnectionFailure(
                    f"not connected to RabbitMQ after waiting {timeout} s") from None
            if self.current is None and self._fatal is None and not self._closed:
                await asyncio.sleep(0)  # the connection dropped again right away

    async def close(self, timeout: float = 2.0) -> None:
        """Stop reconnecting and close the connection within ``timeout`` s; idempotent.

        A broker that does not answer the close in time has its socket aborted.
        """
        if self._closed:
            return
        self._closed = True
        self._ready.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task], timeout=timeout)
        connection = self._connection
        if connection is not None:
            await connection.close(timeout)
        self._connection = None

    def abort(self) -> None:
        """Stop reconnecting and drop the connection at once (no close handshake)."""
        self._closed = True
        self._ready.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abort()
