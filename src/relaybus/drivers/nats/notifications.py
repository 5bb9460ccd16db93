"""Notifications on NATS: JetStream streams and durable pull consumers, or plain subjects.

JetStream (the default): the first send to a topic creates its stream (``Naming.stream``)
if missing, with the configured limits, and publishes with ``Nats-Msg-Id: <message_id>``
so a resent notification (the notifier's retry) is stored once within
``duplicate_window``; ``send`` returns once JetStream has stored it. Each pool has one
durable consumer per priority, created on first listen (starting at ``deliver_policy``),
shared by the pool's members through pull requests; a notification is acknowledged after
its handler, ``requeue()`` naks it for immediate redelivery, a listener that dies without
settling gets it again after ``ack_wait``, and a malformed one is terminated (logged
once, never redelivered).

Core (``notifications=core``): plain subjects and one queue group per pool; nothing is
kept while no listener runs, and acknowledge/requeue do nothing (at most once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from relaybus.drivers.nats.acks import AckedPublisher
from relaybus.drivers.nats.connection import Connection, round_trip, translate, translated
from relaybus.drivers.nats.consumers import CoreConsumer, PullConsumer
from relaybus.drivers.nats.naming import Naming
from relaybus.drivers.nats.options import NatsOptions
from relaybus.drivers.nats.resend import Resender
from relaybus.errors import ConnectionFailure, MalformedMessage, MessageUndeliverable
from relaybus.message import Notification, pack, parse_notification, unpack
from relaybus.target import Target
from relaybus.transport.base import HANDED_OFF, IncomingNotification, NotificationHandler
from relaybus.transport.intake import Intake

LOG = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
_STREAM_EXISTS = 10058  # stream name already in use with a different configuration
_SUBJECTS_OVERLAP = 10065  # subjects overlap with an existing stream
# between two publishes to a stream that has no leader (an election takes about 1-5 s)
FIRST_PAUSE = 0.05
MAX_PAUSE = 0.5
# the longest wait for one acknowledgement, or for the check that a stream exists, before
# trying again (within send_timeout)
ATTEMPT_TIMEOUT = 2.0
CHECK_TIMEOUT = 1.0


class JetStreamNotification(IncomingNotification):
    """A notification pulled from a stream: settled with ack, nak or (malformed) term."""

    __slots__ = ("_msg", "_settled", "notification")

    def __init__(self, msg: Msg, notification: Notification) -> None:
        self.notification = notification
        self._msg = msg
        self._settled = False

    async def acknowledge(self) -> None:
        if not self._settled:
            self._settled = True
            await settle(self._msg, "ack")

    async def requeue(self) -> None:
        if not self._settled:
            self._settled = True
            await settle(self._msg, "nak")

    async def retry_later(self, delay: float, context: Mapping[str, Any]) -> bool:
        """NakWithDelay: the server redelivers it to the pool's consumer when due (the
        message cannot change: the attempt is the server's delivery count)."""
        if self._settled:
            return False
        self._settled = True
        try:
            await self._msg.nak(delay=delay)
        except (nats.errors.Error, OSError) as exc:
            LOG.info("could not nak a notification with a delay (redelivered after "
                     "ack_wait): %s", exc)
        return True

    @property
    def deliveries(self) -> int | None:
        try:
            return int(self._msg.metadata.num_delivered)
        except (nats.errors.Error, AttributeError, TypeError, ValueError):
            return None


class CoreNotification(IncomingNotification):
    """A notification from a plain subject: nothing to settle (at-most-once)."""

    __slots__ = ("notification",)

    def __init__(self, notification: Notification) -> None:
        self.notification = notification

    async def acknowledge(self) -> None:
        return None

    async def requeue(self) -> None:
        LOG.debug("notifications=core keeps nothing: requeue of %s is ignored",
                  self.notification.message_id)


async def settle(msg: Msg, how: str) -> None:
    """ack / nak / term a JetStream message; a lost connection only means redelivery."""
    try:
        await getattr(msg, how)()
    except (nats.errors.Error, OSError) as exc:
        LOG.info("could not %s a notification (it will be redelivered): %s", how, exc)


class Notifications:
    """The notification side of one bus.

    Args:
        connection: the bus's connection.
        naming: subjects and JetStream names.
        options: the driver's options.
        check_size: raises MessageTooLarge for a body (plus header bytes) too large.
        intake: the driver's received-message checks (sizes are refused before decoding).
    """

    def __init__(self, connection: Connection, naming: Naming, options: NatsOptions,
                 check_size: Callable[[bytes, int], bytes], intake: Intake) -> None:
        self._intake = intake
        self._connection = connection
        self._naming = naming
        self._options = options
        self._check_size = check_size
        self._streams: dict[str, str] = {}  # our stream name -> the stream that keeps it
        self._acks = AckedPublisher(connection)
        self._resender = Resender(connection)

    @property
    def jetstream(self) -> bool:
        return self._options.notifications == "jetstream"

    # -- sending -------------------------------------------------------------------

    async def send(self, target: Target, message: dict[str, Any], priority: str) -> None:
        """Publish; with JetStream, return once the stream has stored it."""
        if target.topic is None:
            raise MessageUndeliverable(target, "a notification target needs a topic")
        subject = self._naming.notification_subject(target, priority)
        message_id = message.get("message_id")
        headers: dict[str, str] | None = None
        header_size = 0
        if isinstance(message_id, str):
            headers = {MSG_ID_HEADER: message_id}
            header_size = len(MSG_ID_HEADER) + len(message_id) + 16  # NATS/1.0 line, CRLFs
        body = self._check_size(pack(message), header_size)
        client = self._connection.client
        if not self.jetstream:
            with translated(f"publishing a notification to {subject}"):
                await client.publish(subject, body, headers=headers)
            return
        await self.ensure_stream(target)
        await self._store(target, subject, body, headers)

    async def store(self, target: Target, subject: str, body: bytes,
                    message_id: str | None) -> None:
        """Store an encoded notification in its topic's stream (a due delayed one)."""
        await self.ensure_stream(target)
        await self._store(target, subject, body,
                          {MSG_ID_HEADER: message_id} if message_id else None)

    async def _store(self, target: Target, subject: str, body: bytes,
                     headers: dict[str, str] | None) -> None:
        """Publish to JetStream until a stream acknowledges, within ``send_timeout``.

        Each attempt waits at most ``ATTEMPT_TIMEOUT`` for the acknowledgement, and one
        still waiting when the client reconnects is sent again at once (:mod:`.resend`);
        ``Nats-Msg-Id`` keeps the copies from counting. "No responders" for a stream made
        before means that nobody leads it right now (a leader election after a node died)
        or that it was deleted under us: the stream is made sure of (each check bounded
        by ``CHECK_TIMEOUT``, as the JetStream API may be electing too), and the publish
        is tried again with a short backoff until the time is up.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._options.send_timeout
        pause = FIRST_PAUSE
        while True:
            try:
                await self._resender.send("a notification", subject,
                                          min(deadline - loop.time(), ATTEMPT_TIMEOUT),
                                          self._acks.publish, subject, body, headers)
                return
            except nats.js.errors.NoStreamResponseError as exc:
                failure: Exception = exc
                unanswered = False
            except TimeoutError as exc:  # nats-py's too
                failure, unanswered = exc, True
            except (nats.errors.Error, OSError) as exc:
                raise translate(exc, f"publishing a notification to {subject}") from exc
            if loop.time() + pause >= deadline:
                what = ("no acknowledgement" if unanswered else "no stream answered")
                raise translate(failure, f"{what} for {subject} within "
                                         f"{self._options.send_timeout} s") from failure
            if unanswered:
                continue  # sent again at once: JetStream drops the copy if it had it
            try:
                await self.ensure_stream(target, again=True,
                                         timeout=min(CHECK_TIMEOUT, deadline - loop.time()))
            except ConnectionFailure as exc:  # the JetStream API is electing too
                LOG.info("could not check the stream of %s (%s); trying again", subject, exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)

    async def close(self) -> None:
        """Stop waiting for acknowledgements (the bus is closing)."""
        await self._acks.close()

    # -- streams and consumers -----------------------------------------------------

    async def ensure_stream(self, target: Target, *, again: bool = False,
                            timeout: float | None = None) -> str:
        """Create the topic's stream if missing; return the stream that keeps its subjects.

        A stream that exists with other settings is used as it is; so is another stream
        that already captures these subjects (an operator's own). ``timeout`` bounds each
        JetStream API request (default ``send_timeout``).
        """
        name, subjects = self._naming.stream(target)
        if not again and name in self._streams:
            return self._streams[name]
        opts = self._options
        config = api.StreamConfig(
            name=name, subjects=[subjects], retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType(opts.stream_storage), max_age=opts.stream_max_age,
            max_bytes=opts.stream_max_bytes, max_msgs=opts.stream_max_msgs,
            num_replicas=opts.stream_replicas, duplicate_window=opts.duplicate_window)
        jsm = self._connection.client.jsm(prefix=opts.jetstream_api_prefix,
                                          timeout=min(timeout or opts.send_timeout,
                                                      opts.send_timeout))
        keeper = name
        try:
            await jsm.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code == _STREAM_EXISTS:
                LOG.info("stream %s exists with other settings; using it as it is", name)
            elif exc.err_code == _SUBJECTS_OVERLAP:
                with translated(f"finding the stream that keeps {subjects}"):
                    keeper = await jsm.find_stream_name_by_subject(subjects)
                LOG.info("stream %s already keeps %s; using it", keeper, subjects)
            else:
                raise translate(exc, f"creating stream {name}") from exc
        except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError) as exc:
            where = "the NATS server (nats-server -js)" if opts.jetstream_domain is None \
                else f"a server of domain {opts.jetstream_domain!r} that this one reaches"
            raise ConnectionFailure(
                f"creating stream {name}: JetStream does not answer; is it enabled on "
                f"{where}? notifications=core works without it") from exc
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise translate(exc, f"creating stream {name}") from exc
        self._streams[name] = keeper
        return keeper

    async def ensure_consumer(self, stream: str, pool: str | None, priority: str,
                              subject: str) -> str:
        """Create (or update) the durable consumer of a pool; return its name."""
        opts = self._options
        durable = self._naming.consumer(pool, priority)
        config = api.ConsumerConfig(
            durable_name=durable, ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy(opts.deliver_policy), filter_subject=subject,
            ack_wait=opts.ack_wait, max_deliver=opts.max_deliver)
        jsm = self._connection.client.jsm(prefix=opts.jetstream_api_prefix,
                                          timeout=opts.send_timeout)
        try:
            await jsm.add_consumer(stream, config)
        except nats.js.errors.APIError as exc:
            # it exists with settings that cannot change (e.g. deliver_policy): use it
            try:
                await jsm.consumer_info(stream, durable)
            except (nats.errors.Error, OSError, TimeoutError):
                raise translate(exc, f"creating consumer {durable} on {stream}") from exc
            LOG.warning("consumer %s on %s keeps its old settings: %s", durable, stream,
                        exc.description)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise translate(exc, f"creating consumer {durable} on {stream}") from exc
        return durable

    # -- listening -----------------------------------------------------------------

    async def listen(self, pairs: Sequence[tuple[Target, str]], pool: str | None,
                     handler: NotificationHandler) -> list[CoreConsumer | PullConsumer]:
        """Start one consumer per (topic, priority); stop them all if one fails."""
        started: list[CoreConsumer | PullConsumer] = []
        seen: set[str] = set()
        try:
            for target, priority in pairs:
                if target.topic is None:
                    raise MessageUndeliverable(target, "a notification target needs a topic")
                subject = self._naming.notification_subject(target, priority)
                if subject in seen:
                    continue
                seen.add(subject)
                started.append(await self._listen_one(target, priority, subject, pool,
                                                      handler))
        except BaseException:
            for consumer in started:
                await consumer.stop()
            raise
        return started

    async def _listen_one(self, target: Target, priority: str, subject: str,
                          pool: str | None,
                          handler: NotificationHandler) -> CoreConsumer | PullConsumer:
        if not self.jetstream:
            async def on_core(msg: Msg) -> None:
                notification = _parse(msg, self._intake)
                if notification is not None:
                    await handler(CoreNotification(notification))

            group = self._naming.queue_group(pool)
            with translated(f"subscribing to {subject}"):
                consumer = await CoreConsumer.start(
                    self._connection.client, subject, group, on_core,
                    f"relaybus[nats].listener[{subject}/{group}]")
                await round_trip(self._connection.client)
            return consumer

        async def on_stored(msg: Msg) -> None:
            notification = _parse(msg, self._intake)
            if notification is None:
                await settle(msg, "term")
            else:
                started = handler(JetStreamNotification(msg, notification))
                if started is not HANDED_OFF:  # no free slot: wait for one
                    await started

        stream = await self.ensure_stream(target)
        durable = await self.ensure_consumer(stream, pool, priority, subject)
        puller = PullConsumer(
            self._connection, self._options.jetstream_api_prefix, stream, durable, on_stored,
            functools.partial(self._recover, target, pool, priority, subject),
            batch=self._options.fetch_batch, heartbeat=self._options.idle_heartbeat,
            name=f"relaybus[nats].listener[{stream}/{durable}]")
        with translated(f"listening on {stream}/{durable}"):
            await puller.start()
        return puller

    async def _recover(self, target: Target, pool: str | None, priority: str,
                       subject: str) -> None:
        stream = await self.ensure_stream(target, again=True)
        await self.ensure_consumer(stream, pool, priority, subject)


def _parse(msg: Msg, intake: Intake) -> Notification | None:
    if not intake.received(msg.data, msg.subject, "notification"):
        return None
    try:
        return parse_notification(unpack(msg.data))
    except MalformedMessage as exc:
        LOG.warning("dropping a malformed notification from %s (%d bytes): %s", msg.subject,
                    len(msg.data), exc)
        return None
