"""Publishing: the channels that send, the declarations senders need, and returns.

A few channels of the current connection serve every sender of a transport:

* ``confirm`` — casts and notifications, in publisher-confirm mode (when enabled): a send
  returns once the broker has taken the message; confirms are settled in bulk.
* ``fanout`` — fanout casts, likewise; apart because their exchange disappears with its
  last server, and publishing to a missing exchange closes the channel (404).
* ``direct`` — calls, replies and call-monitor heartbeats, without confirms: a call learns
  its fate from its reply, and a reply is at-most-once anyway.
Declarations go through a :class:`~relaybus.drivers.rabbit.declare.Declarer` (a scratch
channel of their own, since a refused declaration closes its channel) and are remembered
per connection, so the hot path of a send only looks one up.

Requests are published ``mandatory``; when no queue can take one, the broker returns it
(312 NO_ROUTE) and the waiting sender gets MessageUndeliverable at once. Except right after
a reconnection: a broker restart drops transient exchanges and queues, and the servers
that own them declare them again only once they have reconnected too. So for
``restore_grace`` seconds after a reconnection, a returned message is sent again (pausing
a little longer each time) until it is taken or its send timeout runs out.

What a message is published to is declared on the very connection it is published on:
a send that waited out an outage lands on a new connection, where the exchange it was
aimed at may not exist any more.

A confirm channel whose publish the broker nacks is retired (dropped and closed) and the
message is sent again on a new channel until its send timeout: RabbitMQ 3.10 keeps nacking
every publish on a confirm channel opened while a quorum queue's leader node was down, for
as long as that node stays down, while a new channel works at once. Publishes still
waiting for their confirm on a retired channel are sent again too. A nacked message may
have reached its queue all the same, so a resend can deliver it twice (at least once).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

from relaybus.drivers.rabbit.amqp import (
    AMQPError,
    Channel,
    ChannelClosed,
    Connection,
    PublishNacked,
    Returned,
)
from relaybus.drivers.rabbit.amqp.errors import NOT_FOUND
from relaybus.drivers.rabbit.connector import Connector
from relaybus.drivers.rabbit.declare import Declarer
from relaybus.drivers.rabbit.errors import is_connection_error, translate
from relaybus.drivers.rabbit.topology import ExchangeSpec, QueueSpec
from relaybus.errors import ConnectionFailure, MessageUndeliverable, TransportError
from relaybus.message import unpack

LOG = logging.getLogger(__name__)

CONFIRM, FANOUT, DIRECT = "confirm", "fanout", "direct"

ReturnHandler = Callable[[Returned], None]

NACK_PAUSE = 0.05  # before the second resend of a nacked message; doubles up to 1 s
RETURN_PAUSE = 0.1  # before resending a message returned right after a reconnection; doubles

Declaration = ExchangeSpec | QueueSpec


class Publisher:
    """Sends messages and makes sure what they are sent to exists.

    Args:
        connector: the transport's connection keeper.
        confirms: use publisher confirms on the ``confirm`` channel.
        on_returned_call: called with each returned message of the ``direct`` channel
            (the driver fails the call it belongs to).
        restore_grace: seconds after a reconnection during which a returned message is
            sent again rather than failed.
    """

    def __init__(self, connector: Connector, *, confirms: bool,
                 on_returned_call: ReturnHandler, restore_grace: float = 0.0) -> None:
        self._connector = connector
        self.restore_grace = restore_grace
        self._confirms = confirms
        self._on_returned_call = on_returned_call
        self._channels: dict[str, Channel] = {}
        self._opening: dict[str, asyncio.Future[Channel]] = {}
        self._generation = -1
        # declarations made, by key: (connection generation, outcome)
        self._declared: dict[Any, tuple[int, asyncio.Future[None]]] = {}
        self._declaring = asyncio.Lock()
        self._declarer_for: Connection | None = None
        self._declarer_obj: Declarer | None = None
        self._confirm_deadlines: collections.deque[tuple[float, asyncio.Future[None]]] = \
            collections.deque()
        self._sweeper: asyncio.Task[None] | None = None
        # casts waiting for their confirm, by _unique_id, so a return can fail them
        self._returnable: dict[str, tuple[asyncio.Future[None], Any]] = {}
        # confirm channels dropped after a nack: what was pending on them is sent again
        self._retired: weakref.WeakSet[Channel] = weakref.WeakSet()
        self._closing: set[asyncio.Task[None]] = set()

    # -- channels --------------------------------------------------------------------

    def channel_now(self, kind: str) -> Channel | None:
        """The channel of that kind if it can publish right now (the no-await fast path).

        None while there is none, and also while publishing must wait: the broker blocked
        the connection (``connection.blocked``) or paused the channel (``channel.flow``),
        or the socket's send buffer is full; :meth:`channel` waits for those.
        """
        channel = self._channels.get(kind)
        if channel is not None and channel.writable \
                and self._generation == self._connector.generation:
            return channel
        return None

    async def channel(self, kind: str, timeout: float | None) -> Channel:
        """The channel of that kind, once it can publish, opening it if needed.

        Waits for a connection, and then for back-pressure to lift (see
        :meth:`channel_now`), within ``timeout`` seconds in all (None: no limit).

        Raises:
            ConnectionFailure: no connection, or still blocked, after ``timeout``.
            TransportError: the channel could not be opened.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            channel = self.channel_now(kind)
            if channel is not None:
                return channel
            channel = self._channels.get(kind)
            if channel is None or channel.is_closed \
                    or self._generation != self._connector.generation:
                try:  # a blocked broker does not read, so it never answers channel.open
                    async with asyncio.timeout(_left(deadline)):
                        channel = await self._opened(kind, _left(deadline))
                except TimeoutError:
                    raise ConnectionFailure(
                        f"the broker did not open a {kind} channel within {timeout} s "
                        "(blocked by a resource alarm?)") from None
                if channel.writable:
                    return channel
            try:
                await _wait_writable(channel, _left(deadline))
            except AMQPError as exc:
                if not is_connection_error(exc) and not isinstance(exc, ChannelClosed):
                    raise translate(exc, "waiting to publish") from exc
                continue  # the channel ended while waiting: open another
            return channel

    async def _opened(self, kind: str, timeout: float | None) -> Channel:
        """A newly opened channel of that kind (one opening at a time per kind)."""
        opening = self._opening.get(kind)
        if opening is None:
            opening = asyncio.get_running_loop().create_future()
            self._opening[kind] = opening
            try:
                channel = await self._open(kind, timeout)
            except BaseException as exc:
                opening.set_exception(ConnectionFailure(f"opening a {kind} channel was "
                                                        "abandoned") if isinstance(
                    exc, asyncio.CancelledError) else exc)
                opening.exception()  # retrieved: other waiters re-raise it themselves
                raise
            finally:
                self._opening.pop(kind, None)
            opening.set_result(channel)
            return channel
        return await asyncio.shield(opening)

    async def _open(self, kind: str, timeout: float | None) -> Channel:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            connection = await self._connector.connection(
                None if deadline is None else max(deadline - loop.time(), 0))
            if self._connector.generation != self._generation:
                self._generation = self._connector.generation
                self._channels.clear()
            try:
                channel = await connection.channel()
                if kind in (CONFIRM, FANOUT) and self._confirms:
                    await channel.confirm_select()
                break
            except AMQPError as exc:
                if is_connection_error(exc) and (deadline is None or loop.time() < deadline):
                    continue  # the connection just went: wait for the next one
                raise translate(exc, "opening a channel") from exc
        channel.on_return = self._on_returned_call if kind == DIRECT else self._on_returned
        self._channels[kind] = channel
        return channel

    # -- declarations ----------------------------------------------------------------

    def is_declared(self, key: Any) -> bool:
        """Whether ``key`` was declared successfully on the current connection."""
        entry = self._declared.get(key)
        return entry is not None and entry[0] == self._connector.generation \
            and _succeeded(entry[1])

    async def ensure_exchange(self, spec: ExchangeSpec, timeout: float | None) -> None:
        """Declare an exchange once per connection (passively if it exists otherwise)."""
        if not self.is_declared(spec):
            await self._ensure(spec, lambda: self._declare_exchange(spec, timeout))

    async def ensure_queue(self, spec: QueueSpec, timeout: float | None) -> None:
        """Declare a queue and its bindings (and their exchanges) once per connection."""
        key = queue_key(spec)
        if not self.is_declared(key):
            await self._ensure(key, lambda: self._declare_queue(spec, timeout))

    async def declare_exchange(self, spec: ExchangeSpec, timeout: float | None) -> None:
        """Declare an exchange now, even if it was declared before (it may auto-delete)."""
        await self._declare_exchange(spec, timeout)

    async def declare_queue(self, spec: QueueSpec, timeout: float | None) -> None:
        """Declare a queue now, even if it was declared before (renews its x-expires)."""
        await self._declare_queue(spec, timeout)

    async def ensure(self, spec: Declaration, timeout: float | None) -> None:
        """Declare an exchange or a queue once per connection."""
        if isinstance(spec, QueueSpec):
            await self.ensure_queue(spec, timeout)
        else:
            await self.ensure_exchange(spec, timeout)

    def in_restore_grace(self) -> bool:
        """Whether a return now more likely means "not restored yet" than "nobody there"."""
        return self._connector.reconnected_within(self.restore_grace)

    async def _ensure(self, key: Any, declare: Callable[[], Any]) -> None:
        generation = self._connector.generation
        entry = self._declared.get(key)
        if entry is not None and entry[0] == generation and not entry[1].done():
            await asyncio.shield(entry[1])  # someone else is declaring it right now
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._declared[key] = (generation, future)
        try:
            await declare()
        except BaseException as exc:
            if self._declared.get(key, (0, None))[1] is future:
                del self._declared[key]
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: each waiter raises it on its own
            raise
        future.set_result(None)

    async def _declarer(self, timeout: float | None) -> Declarer:
        connection = await self._connector.connection(timeout)
        if self._declarer_for is not connection:
            self._declarer_for = connection
            self._declarer_obj = Declarer(connection)
        assert self._declarer_obj is not None
        return self._declarer_obj

    async def _declare_exchange(self, spec: ExchangeSpec, timeout: float | None) -> None:
        async with self._declaring:
            try:
                await (await self._declarer(timeout)).exchange(spec)
            except AMQPError as exc:
                raise translate(exc, f"declaring exchange {spec.name!r}") from exc

    async def _declare_queue(self, spec: QueueSpec, timeout: float | None) -> None:
        async with self._declaring:
            try:
                await (await self._declarer(timeout)).queue(spec)
            except AMQPError as exc:
                raise translate(exc, f"declaring queue {spec.name!r}") from exc

    async def delete_queue(self, name: str, *, if_unused: bool, if_empty: bool,
                           timeout: float | None) -> bool:
        """Delete a queue; False (and no error) when the broker refuses or is away."""
        try:
            async with self._declaring:
                deleted = await (await self._declarer(timeout)).delete_queue(
                    name, if_unused=if_unused, if_empty=if_empty)
        except (AMQPError, ConnectionFailure, TransportError) as exc:
            LOG.debug("queue %r not deleted: %s", name, exc)
            return False
        if deleted:
            for key in [k for k in self._declared if isinstance(k, tuple) and k[1] == name]:
                del self._declared[key]
        return deleted

    # -- publishing with confirms ----------------------------------------------------

    async def publish_confirmed(self, exchange: str, routing_key: str, body: bytes,
                                properties: bytes, *, mandatory: bool, unique_id: str | None,
                                target: Any, timeout: float, kind: str = CONFIRM,
                                requires: Declaration | None = None) -> None:
        """Publish on a confirm channel and wait for the broker to take the message.

        ``requires`` is declared on each connection the message is published on (a fanout
        exchange before every attempt, as it disappears with its last server).

        When the connection drops before the confirm, the same bytes are published again
        on the next connection (receivers drop the duplicate by its ``_unique_id``). When
        the broker nacks it, the channel is retired and the same bytes are published again
        on a new channel, until ``timeout``.

        Raises:
            MessageUndeliverable: ``mandatory`` and no queue took it.
            ConnectionFailure: no connection, or no confirm, within ``timeout``.
            TransportError: the broker refused the message (nacks until ``timeout``) or the
                channel failed.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        nacks = returns = 0
        while True:
            channel = self.channel_now(kind) or await self.channel(
                kind, max(deadline - loop.time(), 0))
            if requires is not None and (kind == FANOUT or not self.is_declared(
                    queue_key(requires) if isinstance(requires, QueueSpec) else requires)):
                try:
                    await self._prepare(kind, requires, max(deadline - loop.time(), 0))
                except ConnectionFailure:
                    if loop.time() < deadline:
                        continue  # lost the connection while declaring: on the next one
                    raise
            try:
                if not channel.writable:  # it may have changed while declaring
                    await _wait_writable(channel, deadline - loop.time())
                confirmed = channel.publish(exchange, routing_key, body, properties,
                                            mandatory=mandatory)
                if confirmed is None:
                    return
                self._confirm_deadlines.append((deadline, confirmed))
                if self._sweeper is None:
                    self._sweeper = self._connector.tasks.spawn(
                        self._sweep(timeout), name="relaybus[rabbit].confirm-sweeper")
                if mandatory and unique_id is not None:
                    self._returnable[unique_id] = (confirmed, target)
                try:
                    await confirmed
                finally:
                    if unique_id is not None:
                        self._returnable.pop(unique_id, None)
                return
            except PublishNacked as exc:
                nacks += 1
                self._retire(kind, channel)
                left = deadline - loop.time()
                if left <= 0:
                    raise TransportError(
                        f"publishing: the broker refused the message (basic.nack) {nacks} "
                        f"time(s) within the send timeout of {timeout} s") from exc
                LOG.debug("the broker nacked a message (%d time(s)); sending it again on a "
                          "new channel", nacks)
                if nacks > 1:  # a new channel was nacked too: do not spin
                    await asyncio.sleep(min(NACK_PAUSE * 2 ** (nacks - 2), 1.0, left))
            except MessageUndeliverable:
                returns += 1
                if not await self.pause_after_return(returns, deadline - loop.time()):
                    raise
            except ChannelClosed as exc:
                if kind == FANOUT and exc.code == NOT_FOUND:  # the last server just left
                    returns += 1
                    if await self.pause_after_return(returns, deadline - loop.time()):
                        continue
                    raise MessageUndeliverable(target, f"no server listens ({exc.text})") \
                        from exc
                if channel in self._retired and loop.time() < deadline:
                    continue  # its channel was retired before the confirm: send it again
                raise translate(exc, "publishing") from exc
            except AMQPError as exc:
                if not is_connection_error(exc) or loop.time() >= deadline:
                    raise translate(exc, "publishing") from exc
                LOG.info("connection lost before the broker confirmed a message; "
                         "sending it again after reconnecting")

    async def _prepare(self, kind: str, requires: Declaration, timeout: float) -> None:
        if kind == FANOUT and isinstance(requires, ExchangeSpec):
            await self.declare_exchange(requires, timeout)
        else:
            await self.ensure(requires, timeout)

    async def pause_after_return(self, returns: int, left: float | None,
                                 what: str = "message") -> bool:
        """Pause before sending a returned message again; False when it must fail instead.

        Only right after a reconnection (see ``restore_grace``) and with time ``left``.
        """
        if (left is not None and left <= 0) or not self.in_restore_grace():
            return False
        LOG.info("a %s was returned %d time(s) right after reconnecting; sending it "
                 "again while servers restore their queues", what, returns)
        await asyncio.sleep(min(RETURN_PAUSE * 2 ** (returns - 1), 1.0,
                                1.0 if left is None else left))
        return True

    def _retire(self, kind: str, channel: Channel) -> None:
        """Stop using a channel the broker nacked a publish on, and close it."""
        if channel in self._retired:
            return
        self._retired.add(channel)
        if self._channels.get(kind) is channel:
            del self._channels[kind]
        LOG.warning("the broker nacked a message on %s channel %d; publishing on a new channel",
                    kind, channel.number)
        task = self._connector.tasks.spawn(
            _close_quietly(channel), name="relaybus[rabbit].close-nacked-channel")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _sweep(self, timeout: float) -> None:
        """Fail confirms that took longer than their send timeout: one task, not a timer
        per message. Deadlines grow in publishing order, so only the oldest is checked."""
        loop = asyncio.get_running_loop()
        pending = self._confirm_deadlines
        try:
            while pending:
                deadline, future = pending[0]
                if future.done():
                    pending.popleft()
                    continue
                late = loop.time() - deadline
                if late >= 0:
                    pending.popleft()
                    future.set_exception(ConnectionFailure(
                        f"the broker did not confirm the message within {timeout} s"))
                    continue
                await asyncio.sleep(min(-late, 1.0))
        finally:
            self._sweeper = None

    def _on_returned(self, returned: Returned) -> None:
        unique_id = returned_member(returned.body, "_unique_id")
        waiting = self._returnable.pop(unique_id, None) if unique_id else None
        if waiting is None:
            LOG.warning("the broker returned a message sent to exchange %r with routing key "
                        "%r: %s %s", returned.exchange, returned.routing_key,
                        returned.reply_code, returned.reply_text)
            return
        future, target = waiting
        if not future.done():
            future.set_exception(MessageUndeliverable(
                target, f"no queue is bound to exchange {returned.exchange!r} with routing "
                        f"key {returned.routing_key!r} ({returned.reply_code} "
                        f"{returned.reply_text})"))

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._declarer_obj is not None:
            await self._declarer_obj.close()
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            with contextlib.suppress(AMQPError):
                await channel.close()


async def _close_quietly(channel: Channel) -> None:
    with contextlib.suppress(AMQPError):
        await channel.close()


def queue_key(spec: QueueSpec) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """What identifies a queue declaration: its name and its bindings."""
    return ("queue", spec.name, tuple((exchange.name, key) for exchange, key in spec.bindings))


async def _wait_writable(channel: Channel, timeout: float | None) -> None:
    """Respect the broker's connection.blocked and channel.flow, and TCP back-pressure.

    Raises:
        ConnectionFailure: still blocked after ``timeout`` seconds (a call's own wrapper
            turns this into MessagingTimeout once its deadline has passed).
        ChannelClosed, ConnectionLost, ConnectionClosed: the channel ended meanwhile.
    """
    try:
        async with asyncio.timeout(None if timeout is None else max(timeout, 0)):
            await channel.wait_writable()
    except TimeoutError:
        raise ConnectionFailure(f"the broker blocked publishing for more than {timeout:.1f} s "
                                "(a resource alarm, channel.flow, or a full socket)") from None


def _left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(deadline - asyncio.get_running_loop().time(), 0.0)


def _succeeded(future: asyncio.Future[None]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def returned_member(body: bytes, name: str) -> str | None:
    """A top-level string member of a returned message (for correlating returns)."""
    try:
        value = unpack(body).get(name)
    except Exception:  # noqa: BLE001 - a body we cannot read cannot be correlated
        return None
    return value if isinstance(value, str) else None
