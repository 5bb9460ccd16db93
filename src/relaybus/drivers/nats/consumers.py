"""Consumers: core subscriptions and JetStream pull consumers, each pumped by a named task.

A :class:`CoreConsumer` hands what one subscription receives to its handler one message at
a time, from the subscription's task (named ``relaybus[nats].…``). nats-py bounds what
waits for the handler (512 Ki messages or 128 MiB per subscription): when it falls behind,
nats-py drops what no longer fits and reports each drop to the connection, which counts them
by consumer and logs them once per interval with a count (see
:mod:`relaybus.drivers.nats.slow_consumers`), never once per message.

A :class:`PullConsumer` asks a JetStream durable consumer for ``batch`` messages at a time
on a private inbox (a CoreConsumer) and asks again when they have been handed over, when
the request expires, after a reconnect, or when the server's idle heartbeats stop (the
request was lost, e.g. the server restarted); a request that failed or went silent also
has the stream and consumer re-created in the background, in case they are gone. Members
of one pool share one durable consumer, so the server spreads messages among them.

A pull request cannot be withdrawn: it lives on the server until it is filled or expires
(``PULL_EXPIRES``), and nats-server 2.9 now and then still delivers to a request whose inbox
was just unsubscribed. Such a message is not lost; the server redelivers it after
``ack_wait``. Short-lived requests keep that window small.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from relaybus.drivers.nats.connection import Connection
from relaybus.errors import MessagingError
from relaybus.transport.base import Subscription

LOG = logging.getLogger(__name__)

MessageHandler = Callable[[Msg], Awaitable[None]]

DRAIN_TIMEOUT = 5.0
PULL_EXPIRES = 5.0
RECOVER_TIMEOUT = 3.0
# the longest pause between two pull requests that JetStream failed: it is back within
# a second of a stream-leader election ending
MAX_BACKOFF = 1.0
_STATUS = "Status"


class CoreConsumer:
    """One core-NATS subscription whose messages go to a handler one at a time, in order.

    nats-py runs the handler from the subscription's own task (renamed ``name`` here, so
    that task dumps show whose it is); its bounded pending queue and slow-consumer report
    stay in force when the handler falls behind.
    """

    def __init__(self, handler: MessageHandler, name: str) -> None:
        self.name = name
        self._handler = handler
        self._sub: NatsSubscription | None = None
        self._client: Client | None = None
        self._stopped = False

    @classmethod
    async def start(cls, client: Client, subject: str, queue: str, handler: MessageHandler,
                    name: str, *, guarded: bool = False) -> CoreConsumer:
        """Subscribe (in queue group ``queue`` unless empty).

        ``guarded``: the handler catches and logs its own errors, so nats-py is given it as
        it is, without the wrapper that does (one coroutine less per message).
        """
        consumer = cls(handler, name)
        consumer._client = client
        consumer._sub = sub = await client.subscribe(
            subject, queue=queue, cb=handler if guarded else consumer._handle)
        task = getattr(sub, "_wait_for_msgs_task", None)
        if isinstance(task, asyncio.Task):
            task.set_name(name)
        return consumer

    async def _handle(self, msg: Msg) -> None:
        try:
            await self._handler(msg)
        except Exception:
            LOG.exception("%s: the handler failed on a message of %s", self.name, msg.subject)

    async def stop(self) -> None:
        """Unsubscribe, hand over everything already received; idempotent.

        Connected, the subscription is drained: the server confirms it sends no more, and
        whatever arrived before is handed over. Disconnected, it is dropped at once
        (nothing more can arrive), and nats-py will not restore it on reconnect.
        """
        if self._stopped or self._sub is None:
            return
        self._stopped = True
        sub, client = self._sub, self._client
        assert client is not None
        try:
            if client.is_connected:
                async with asyncio.timeout(DRAIN_TIMEOUT):
                    await sub.drain()
            elif not client.is_closed:
                await sub.unsubscribe()
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            LOG.info("%s: could not drain the subscription (%s); dropping it", self.name, exc)
            _forget(client, sub)


def _forget(client: Client, sub: NatsSubscription) -> None:
    """Make sure nats-py neither pumps nor restores ``sub`` after a failed drain.

    nats-py has no public call for a subscription whose drain was interrupted: it stays
    in the client's table and would be subscribed again after a reconnect, a zombie
    that takes queue-group messages nobody handles.
    """
    sub._stop_processing()
    client._remove_sub(sub._id)


class ConsumerSet(Subscription):
    """The relaybus Subscription of a listen call: stops all its consumers together."""

    def __init__(self, consumers: list[CoreConsumer | PullConsumer],
                 on_stop: Callable[[ConsumerSet], None]) -> None:
        self._consumers = consumers
        self._on_stop = on_stop

    async def stop(self) -> None:
        consumers, self._consumers = self._consumers, []
        if consumers:
            await asyncio.gather(*(c.stop() for c in consumers))
        self._on_stop(self)


class PullConsumer:
    """Pulls one JetStream durable consumer, for one member of a pool.

    Args:
        connection: the bus's connection.
        api_prefix: the JetStream API prefix (``$JS.API``).
        stream, consumer: the durable consumer to pull from.
        handler: gets every message (status messages are handled here).
        recover: re-creates the stream and consumer when they may be gone.
        batch: messages per pull request.
        heartbeat: seconds between the server's idle heartbeats.
        name: the task's name.
    """

    def __init__(self, connection: Connection, api_prefix: str, stream: str, consumer: str,
                 handler: MessageHandler, recover: Callable[[], Awaitable[None]], *,
                 batch: int, heartbeat: float, name: str) -> None:
        self.name = name
        self._connection = connection
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._handler = handler
        self._recover = recover
        self._batch = batch
        self._heartbeat = heartbeat
        expires = max(PULL_EXPIRES, heartbeat * 2.5)
        self._request = json.dumps({"batch": batch, "expires": int(expires * 1e9),
                                    "idle_heartbeat": int(heartbeat * 1e9)}).encode()
        self._wake = asyncio.Event()
        self._open = False
        self._lost = False
        self._handed = 0
        self._busy = False
        self._last_seen = 0.0
        self._inbox: CoreConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None

    async def start(self) -> None:
        client = self._connection.client
        inbox = client.new_inbox()
        self._inbox = await CoreConsumer.start(client, inbox, "", self._on_delivery,
                                               f"{self.name}.deliveries")
        self._inbox_subject = inbox
        self._connection.on_reconnect.add(self._reconnected)
        self._task = self._connection.tasks.spawn(self._run(), name=self.name)

    def _reconnected(self) -> None:
        self._open = False
        self._wake.set()

    async def _on_delivery(self, msg: Msg) -> None:
        self._last_seen = asyncio.get_running_loop().time()
        status = msg.headers.get(_STATUS) if msg.headers else None
        if status is not None:
            if status == "100":  # idle heartbeat: the request is alive
                return
            if status not in ("404", "408"):  # 404/408: no messages, request expired
                LOG.info("%s: pull request ended with status %s %s", self.name, status,
                         (msg.headers or {}).get("Description", ""))
                self._lost = True
            self._open = False
            self._wake.set()
            return
        self._handed += 1
        if self._handed >= self._batch:
            self._open = False
            self._wake.set()
        self._busy = True  # heartbeats wait behind a slow handler: not a lost request
        try:
            await self._handler(msg)
        finally:
            self._busy = False
            self._last_seen = asyncio.get_running_loop().time()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.1
        while True:
            if self._lost:
                self._lost = False
                await self._wait_until_connected()
                if self._recovery is None or self._recovery.done():
                    self._recovery = self._connection.tasks.spawn(
                        self._restore(), name=f"{self.name}.restore")
            self._wake.clear()
            self._handed, self._open = 0, True
            started = self._last_seen = loop.time()
            try:
                await self._connection.client.publish(self._next_subject, self._request,
                                                      reply=self._inbox_subject)
            except (nats.errors.Error, MessagingError) as exc:
                LOG.debug("%s: cannot send a pull request: %s", self.name, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            while self._open:
                try:
                    async with asyncio.timeout(self._heartbeat):
                        await self._wake.wait()
                except TimeoutError:
                    silent = loop.time() - self._last_seen
                    if not self._busy and silent > 2 * self._heartbeat:
                        LOG.info("%s: no heartbeat from the server; asking again", self.name)
                        self._open, self._lost = False, True
                self._wake.clear()
            if self._handed == 0 and loop.time() - started < 1.0:
                await asyncio.sleep(backoff)  # ended at once with nothing: do not spin
                backoff = min(backoff * 2, MAX_BACKOFF)
            else:
                backoff = 0.1

    async def _restore(self) -> None:
        """Re-create the stream and consumer in case they are gone, beside the pulling.

        A pull request that failed or went silent may mean the consumer was deleted, or
        only that its leader is being elected (the JetStream API may then not answer for
        seconds): pulling goes on meanwhile, and succeeds as soon as either is over.
        """
        try:
            async with asyncio.timeout(RECOVER_TIMEOUT):
                await self._recover()
        except (MessagingError, TimeoutError) as exc:
            LOG.info("%s: cannot restore the consumer yet: %s", self.name,
                     exc or "no answer")

    async def _wait_until_connected(self) -> None:
        """Return once the connection is up (a reconnect wakes this up at once)."""
        while not self._connection.client.is_connected:
            self._wake.clear()
            try:
                async with asyncio.timeout(self._heartbeat):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def stop(self) -> None:
        """Stop pulling; hand over what was received; idempotent."""
        self._connection.on_reconnect.discard(self._reconnected)
        task, self._task = self._task, None
        recovery, self._recovery = self._recovery, None
        for running in (task, recovery):
            if running is not None and not running.done():
                running.cancel()
                await asyncio.wait([running])
        if self._inbox is not None:
            await self._inbox.stop()
