"""The ``nats://`` transport: relaybus's semantics on NATS, JetStream keeping notifications.

Where things go is in :mod:`.naming` (and docs/protocol/nats.md). How RPC works:

* A **call** is published to the target's subject with a NATS reply subject in the bus's
  inbox (``<inbox>.<msg_id>``, also sent as ``_reply_q``). Servers of a topic share a
  queue group (round-robin), a server also listens on its own subject, and every server
  has a plain subscription on the topic's fanout subject. When nobody subscribes, the
  NATS server answers the reply subject at once with status 503 (no responders), so the
  call fails with MessageUndeliverable instead of timing out. The reply and the
  call-monitor heartbeats come back to the inbox, where one wildcard subscription per bus
  hands them to :class:`~relaybus.transport.replies.PendingReplies` by ``_msg_id``.
* A **cast** travels the same way (``confirm_casts``, the default): the server that takes
  it answers an empty confirmation on receipt, before running the method, which gives the
  same at-once MessageUndeliverable and tells the caster the cast arrived. A cast still
  unconfirmed when the client reconnects is sent again (:mod:`.resend`). With
  ``confirm_casts=0`` a cast is a plain publish, and a cast to nobody is lost silently.
* A malformed request is logged in one line and dropped; when it still names a
  ``_msg_id`` and ``_reply_q``, its caller gets a ``MalformedMessage`` failure at once.
* Messages use the same body as every relaybus transport: oslo.messaging's JSON in the
  ``oslo.version`` 2.0 envelope (:mod:`relaybus.message`).

Notifications are in :mod:`.notifications`; the connection, reconnects and the error
boundary in :mod:`.connection`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from relaybus.drivers.nats.connection import Connection, round_trip, translate, translated
from relaybus.drivers.nats.consumers import ConsumerSet, CoreConsumer, PullConsumer
from relaybus.drivers.nats.delayed import MAX_DELAY, Delays, Mover
from relaybus.drivers.nats.eventlog import NatsEventLog
from relaybus.drivers.nats.naming import Naming, is_literal_subject
from relaybus.drivers.nats.notifications import Notifications
from relaybus.drivers.nats.options import NatsOptions, server_list
from relaybus.drivers.nats.pacing import WritePacer
from relaybus.drivers.nats.resend import Resender
from relaybus.drivers.nats.stored import visit_stream
from relaybus.errors import (
    MalformedMessage,
    MessageTooLarge,
    MessageUndeliverable,
    MessagingError,
    MessagingTimeout,
    TransportError,
)
from relaybus.message import (
    DuplicateFilter,
    Reply,
    Request,
    build_reply,
    build_request,
    new_unique_id,
    pack,
    unpack,
)
from relaybus.target import Target
from relaybus.transport.base import (
    HANDED_OFF,
    Driver,
    IncomingRequest,
    NotificationHandler,
    NotificationVisitor,
    RequestHandler,
    Subscription,
    TapHandler,
)
from relaybus.transport.eventlog import EventLog, Retention
from relaybus.transport.intake import Intake, Refused, ReplyAddressRule
from relaybus.transport.replies import Answer, PendingReplies
from relaybus.url import TransportURL

LOG = logging.getLogger(__name__)

NO_RESPONDERS = "503"
MAX_SUBJECT = 1024  # the longest reply subject a server publishes to (is_literal_subject's)


def inbox_rule(inbox_prefix: str) -> ReplyAddressRule:
    """Replies go only to inbox subjects: ``<inbox_prefix>`` and one to three tokens of
    ``[A-Za-z0-9_-]``. Never a ``$`` subject (JetStream's API), a wildcard, or a subject a
    service or stream listens on."""
    return ReplyAddressRule(
        re.escape(inbox_prefix) + r"(\.[A-Za-z0-9_-]{1,64}){1,3}",
        f"an inbox subject {inbox_prefix}.<token>[.<token>]")


class _NoResponders(Exception):
    """The NATS server found nobody subscribed to a request's subject."""


class NatsRequest(IncomingRequest):
    """A request a server received; replies go to its ``_reply_q`` subject."""

    __slots__ = ("_driver", "request")

    def __init__(self, driver: NatsDriver, request: Request) -> None:
        self.request = request
        self._driver = driver

    async def reply(self, result: Any = None, failure: dict[str, Any] | None = None) -> None:
        if self.request.msg_id is not None:
            await self._driver.send_reply(self.request,
                                          build_reply(self.request.msg_id, result, failure))

    async def heartbeat(self) -> None:
        if self.request.msg_id is not None:
            await self._driver.send_reply(self.request,
                                          build_reply(self.request.msg_id, ending=False))


class NatsDriver(Driver):
    """NATS transport; see the module docstring and :class:`NatsOptions`."""

    def __init__(self, url: TransportURL, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.nats_options = NatsOptions.parse(url.masked(), self.options)
        #: the subjects, streams and consumers this bus uses
        self.naming = Naming(self.nats_options.subject_prefix, self.control_exchange)
        self._connection = Connection(server_list(url, self.nats_options),
                                      self.nats_options, url.masked(), self.tasks)
        #: the checks every received message goes through (and what they refused)
        self.intake = Intake("nats", self.max_message_size,
                             inbox_rule(self.nats_options.inbox_prefix))
        self._inbox_prefix_literal = is_literal_subject(self.nats_options.inbox_prefix)
        self._notifications = Notifications(self._connection, self.naming, self.nats_options,
                                            self._check, self.intake)
        self._replies = PendingReplies()
        self._pacer = WritePacer()
        self._resender = Resender(self._connection)
        self._delays = Delays(self._connection, self.naming, self.nats_options)
        self._casts: set[str] = set()
        self._inbox: str | None = None
        self._inbox_consumer: CoreConsumer | None = None
        self._inbox_lock = asyncio.Lock()
        self._subscriptions: set[ConsumerSet] = set()
        self._closed = False

    @property
    def connection_name(self) -> str:
        """The connection's name at the NATS server (its monitoring shows it)."""
        return self._connection.name

    async def connect(self) -> None:
        await self._connection.open()
        self._connection.on_lost.add(self._replies.fail_all)

    def connection_problem(self) -> str | None:
        if self._closed:
            return "the transport is closed"
        return self._connection.problem()

    def _client(self) -> Client:
        if self._closed:
            raise TransportError("the nats transport is closed")
        return self._connection.client

    def _check(self, body: bytes, header_size: int = 0) -> bytes:
        """``check_size``, and the NATS server's own limit (``max_payload``)."""
        self.check_size(body)
        limit = self._client().max_payload - header_size
        if len(body) > limit:
            raise MessageTooLarge(len(body), limit)
        return body

    # -- RPC: the caller's side ------------------------------------------------------

    async def send(self, target: Target, request: Request, *, wait_for_reply: bool,
                   timeout: float | None = None,
                   call_monitor_timeout: float | None = None) -> Reply | None:
        client = self._client()
        if target.topic is None:
            raise MessageUndeliverable(target, "the target has no topic")
        subject = self.naming.rpc_subject(target)
        confirmed = wait_for_reply or self.nats_options.confirm_casts
        inbox = (self._inbox or await self._ensure_inbox()) if confirmed else None
        msg_id = new_unique_id() if wait_for_reply else None
        reply_q = f"{inbox}.{msg_id}" if msg_id else None
        body = self._check(pack(build_request(
            request.method, request.args, request.context, namespace=request.namespace,
            version=request.version, msg_id=msg_id, reply_q=reply_q,
            call_monitor_timeout=call_monitor_timeout)))
        if inbox is None:
            try:
                await client.publish(subject, body)
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                raise translate(exc, f"casting to {subject}") from exc
            return None
        if reply_q is not None:
            assert msg_id is not None
            return await self._call(target, subject, body, msg_id, reply_q, timeout,
                                    call_monitor_timeout)
        await self._resender.send("a cast", subject, self.nats_options.send_timeout,
                                  self._confirmed_cast, target, subject, body, inbox)
        return None

    max_delay = MAX_DELAY

    async def cast_later(self, target: Target, request: Request, delay: float) -> None:
        self._client()
        if target.topic is None:
            raise MessageUndeliverable(target, "the target has no topic")
        body = self._check(pack(build_request(
            request.method, request.args, request.context, namespace=request.namespace,
            version=request.version)), 200)  # room for the delay headers
        await self._delays.store(target, "rpc", self.naming.rpc_subject(target), body, delay,
                                 None)

    async def notify_later(self, target: Target, message: dict[str, Any], priority: str,
                           delay: float) -> None:
        self._client()
        if target.topic is None:
            raise MessageUndeliverable(target, "a notification target needs a topic")
        body = self._check(pack(message), 300)  # room for the delay and id headers
        message_id = message.get("message_id")
        await self._delays.store(target, "notify",
                                 self.naming.notification_subject(target, priority), body,
                                 delay, message_id if isinstance(message_id, str) else None)

    async def _movers(self, target: Target, kind: str) -> list[PullConsumer]:
        """Start moving the topic's due delayed messages; none without JetStream."""
        topic = target.replace(server=None, fanout=False)
        allowed: Callable[[str], bool]
        move: Mover
        if kind == "rpc":
            rpc, fanout = self.naming.rpc_subject(topic), self.naming.fanout_subject(topic)

            def allowed(subject: str) -> bool:
                return subject in (rpc, fanout) or (
                    subject.startswith(rpc + ".") and subject.count(".") == rpc.count(".") + 1)

            async def move(subject: str, body: bytes, message_id: str | None) -> None:
                with translated(f"casting a due delayed message to {subject}"):
                    await self._client().publish(subject, body)
        else:
            base = self.naming.notification_subject(topic, "info").rpartition(".")[0]

            def allowed(subject: str) -> bool:
                return subject.startswith(base + ".") \
                    and subject.count(".") == base.count(".") + 1

            async def move(subject: str, body: bytes, message_id: str | None) -> None:
                await self._notifications.store(topic, subject, body, message_id)
        try:
            return [await self._delays.mover(topic, kind, allowed, move)]
        except MessagingError as exc:
            LOG.debug("no mover of delayed messages for %s (%s)", topic, exc)
            return []

    async def _call(self, target: Target, subject: str, body: bytes, msg_id: str,
                    reply_q: str, timeout: float | None,
                    call_monitor_timeout: float | None) -> Reply:
        """Publish a call and wait for its reply (never sent twice: a method may not be
        idempotent; call-monitor heartbeats tell a lost call early)."""
        self._replies.register(msg_id)
        try:
            try:
                await self._client().publish(subject, body, reply=reply_q)
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                raise translate(exc, f"sending to {subject}") from exc
            return await self._replies.wait(msg_id, timeout, call_monitor_timeout)
        except _NoResponders:
            raise MessageUndeliverable(target) from None
        finally:
            self._replies.discard(msg_id)

    async def gather(self, target: Target, request: Request, *, window: float,
                     limit: int) -> list[Answer]:
        """Publish the call to the topic's fanout subject, with the reply subject every
        server answers to, and gather the replies; no subscriber: MessageUndeliverable
        (the NATS server's no-responders status)."""
        self._client()
        if target.topic is None:
            raise MessageUndeliverable(target, "the target has no topic")
        subject = self.naming.fanout_subject(target)
        inbox = self._inbox or await self._ensure_inbox()
        msg_id = new_unique_id()
        reply_to = f"{inbox}.{msg_id}"
        body = self._check(pack(build_request(
            request.method, request.args, request.context, namespace=request.namespace,
            version=request.version, msg_id=msg_id, reply_q=reply_to)))
        self._replies.register_gathering(msg_id, limit)
        try:
            try:
                await self._client().publish(subject, body, reply=reply_to)
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                raise translate(exc, f"sending to {subject}") from exc
            return await self._replies.gather(msg_id, window)
        except _NoResponders:
            raise MessageUndeliverable(target) from None
        finally:
            self._replies.discard(msg_id)

    async def _confirmed_cast(self, target: Target, subject: str, body: bytes, inbox: str,
                              wait: float) -> None:
        """Publish a cast and wait up to ``wait`` s for a server's empty confirmation."""
        token = new_unique_id()
        self._replies.register(token)
        self._casts.add(token)
        try:
            try:
                await self._client().publish(subject, body, reply=f"{inbox}.{token}")
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                raise translate(exc, f"sending to {subject}") from exc
            await self._replies.wait(token, wait)
        except _NoResponders:
            raise MessageUndeliverable(target) from None
        except MessagingTimeout:
            raise MessagingTimeout(f"no server confirmed the cast to {target} within "
                                   f"{self.nats_options.send_timeout} s") from None
        finally:
            self._replies.discard(token)
            self._casts.discard(token)

    async def _ensure_inbox(self) -> str:
        if self._inbox is None:
            async with self._inbox_lock:
                if self._inbox is None:
                    client = self._client()
                    inbox = client.new_inbox()
                    with translated("subscribing to the reply inbox"):
                        self._inbox_consumer = await CoreConsumer.start(
                            client, f"{inbox}.*", "", self._on_reply,
                            f"relaybus[nats].replies[{inbox}]", guarded=True)
                    self._inbox = inbox
        return self._inbox

    async def _on_reply(self, msg: Msg) -> None:
        try:
            token = msg.subject.rpartition(".")[2]
            status = msg.headers.get("Status") if msg.headers else None
            if status is not None:
                if status == NO_RESPONDERS:
                    self._replies.fail(token, _NoResponders())
                else:
                    LOG.debug("ignoring status %s on the reply inbox", status)
                return
            if not msg.data:
                if token in self._casts:
                    self._replies.deliver(Reply(msg_id=token, ending=True))
                else:
                    LOG.info("dropping a confirmation on %s: its cast no longer waits (it "
                             "timed out, or was sent again after a reconnect)", msg.subject)
                return
            reply = self.intake.reply(msg.data, msg.subject)
            if reply is not None:
                self._replies.deliver(reply)
        except Exception:
            LOG.exception("the reply inbox failed on a message of %s", msg.subject)

    # -- RPC: the server's side ------------------------------------------------------

    async def listen(self, target: Target, handler: RequestHandler) -> Subscription:
        client = self._client()
        if target.topic is None:
            raise MessageUndeliverable(target, "a server target needs a topic")
        duplicates = DuplicateFilter()

        async def on_request(msg: Msg) -> None:
            try:
                outcome = self.intake.request(msg.data, msg.subject,
                                              reply_to=msg.reply or None)
                if isinstance(outcome, Refused):
                    if outcome.answer is not None:
                        await self._publish_reply(*outcome.answer)
                    return
                if outcome.msg_id is None and msg.reply:
                    await self._confirm(msg.reply)
                if not self.intake.is_duplicate(outcome, duplicates, msg.subject):
                    started = handler(NatsRequest(self, outcome))
                    if started is not HANDED_OFF:  # no free slot: wait for one
                        await started
                if self._pacer.due():  # let nats-py write the replies so far (.pacing)
                    await asyncio.sleep(0)
            except Exception:
                LOG.exception("the server of %s failed on a message of %s", target,
                              msg.subject)

        consumers: list[CoreConsumer | PullConsumer] = []
        try:
            with translated(f"listening on {target}"):
                for subject, group in self.naming.server_subjects(target):
                    consumers.append(await CoreConsumer.start(
                        client, subject, group, on_request,
                        f"relaybus[nats].server[{subject}]", guarded=True))
                if self._notifications.jetstream:  # delayed casts need JetStream
                    consumers.extend(await self._movers(target, "rpc"))
                await round_trip(client)  # the NATS server knows of us before listen returns
        except BaseException:
            for consumer in consumers:
                await consumer.stop()
            raise
        return self._remember(ConsumerSet(consumers, self._subscriptions.discard))

    async def _publish_reply(self, reply_q: str, body: bytes) -> None:
        """Tell the caller of a refused call why (the intake checked the address)."""
        try:
            with translated(f"replying to {reply_q}"):
                await self._client().publish(reply_q, self._check(body))
        except MessagingError as error:
            LOG.info("could not refuse a malformed call: %s", error)

    async def _confirm(self, reply: str) -> None:
        """Confirm a cast (the intake checked ``reply`` against the inbox rule)."""
        try:
            await self._client().publish(reply, b"")
        except Exception as exc:  # noqa: BLE001 - the caster will time out; log and go on
            LOG.info("could not confirm a cast: %s", exc)
            return
        self._pacer.wrote()

    async def send_reply(self, request: Request, message: dict[str, Any]) -> None:
        """Publish a reply (or heartbeat) to the caller's ``_reply_q``.

        The intake refused requests whose ``_reply_q`` is not an inbox subject; the check
        is repeated here so that no reply ever leaves for any other subject.
        """
        reply_q = request.reply_q or ""
        # the rule allows only [A-Za-z0-9_-] tokens after the prefix, so the address is a
        # literal subject when the prefix is one (checked once, in __init__)
        if not (self._inbox_prefix_literal and len(reply_q) <= MAX_SUBJECT
                and self.intake.reply_rule.allows(reply_q)):
            LOG.warning("dropping the reply to %s: %r is not %s", request.msg_id, reply_q[:80],
                        self.intake.reply_rule.description)
            return
        client = self._client()
        body = pack(message)
        self.check_size(body)
        if len(body) > client.max_payload:
            raise MessageTooLarge(len(body), client.max_payload)
        try:
            await client.publish(reply_q, body)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise translate(exc, f"replying to {reply_q}") from exc
        self._pacer.wrote()

    # -- notifications ---------------------------------------------------------------

    async def send_notification(self, target: Target, message: dict[str, Any],
                                priority: str) -> None:
        self._client()
        await self._notifications.send(target, message, priority)

    async def listen_for_notifications(self, targets_and_priorities: Sequence[tuple[Target, str]],
                                       pool: str | None,
                                       handler: NotificationHandler) -> Subscription:
        self._client()
        consumers = await self._notifications.listen(targets_and_priorities, pool, handler)
        if self._notifications.jetstream:
            for target in dict.fromkeys(t.replace(server=None, fanout=False)
                                        for t, _ in targets_and_priorities):
                consumers.extend(await self._movers(target, "notify"))
        return self._remember(ConsumerSet(list(consumers), self._subscriptions.discard))

    async def visit_notifications(self, target: Target, visit: NotificationVisitor) -> int:
        self._client()
        if target.topic is None:
            raise MessageUndeliverable(target, "a notification target needs a topic")
        if not self._notifications.jetstream:
            raise TransportError("with notifications=core nothing is stored to show")
        stream = await self._notifications.ensure_stream(target)
        return await visit_stream(self._connection, self.naming, self.nats_options, stream,
                                  target, visit)

    async def stream_for(self, target: Target) -> str:
        """The JetStream stream that keeps ``target``'s notifications (created if missing)."""
        return await self._notifications.ensure_stream(target)

    async def event_log(self, name: str, retention: Retention) -> EventLog:
        """A JetStream stream (see :mod:`~relaybus.drivers.nats.eventlog`)."""
        self._client()
        log = NatsEventLog(self._connection, self.naming.prefix, name, retention,
                           self.nats_options.send_timeout)
        await log.declare()
        return log

    # -- watching ----------------------------------------------------------------------

    async def tap(self, target: Target, handler: TapHandler) -> Subscription:
        """Watch a topic's requests and notifications with plain subscriptions.

        Consumers get their messages as before. The one way a tap shows: NATS counts it as
        a subscriber, so a call to a topic with no server but a tap times out instead of
        failing at once (and a confirmed cast waits ``send_timeout``).
        """
        client = self._client()
        if target.topic is None:
            raise MessageUndeliverable(target, "a tap needs a topic")

        async def on_copy(msg: Msg) -> None:
            try:
                message = unpack(msg.data)
            except MalformedMessage as exc:
                LOG.warning("tap: dropping a malformed message from %s (%d bytes): %s",
                            msg.subject, len(msg.data), exc)
                return
            exchange, key = self.naming.describe(msg.subject)
            await handler(exchange, key, message)

        consumers: list[CoreConsumer] = []
        try:
            with translated(f"tapping {target.topic}"):
                for subject in self.naming.tap_subjects(target):
                    consumers.append(await CoreConsumer.start(
                        client, subject, "", on_copy, f"relaybus[nats].tap[{subject}]"))
                await round_trip(client)
        except BaseException:
            for consumer in consumers:
                await consumer.stop()
            raise
        return self._remember(ConsumerSet(list(consumers), self._subscriptions.discard))

    # -- lifecycle -------------------------------------------------------------------

    def _remember(self, subscription: ConsumerSet) -> ConsumerSet:
        self._subscriptions.add(subscription)
        return subscription

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for subscription in list(self._subscriptions):
                await subscription.stop()
            if self._inbox_consumer is not None:
                await self._inbox_consumer.stop()
            await self._notifications.close()
        except MessagingError as exc:  # pragma: no cover - stop() swallows nats errors
            LOG.info("closing: %s", exc)
        finally:
            self._replies.fail_all(TransportError("the transport was closed"))
            await self._connection.close()
