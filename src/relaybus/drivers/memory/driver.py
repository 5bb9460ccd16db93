"""The ``memory://`` transport: oslo.messaging's topology, in one process.

It lays out queues the way the rabbit driver does (``<topic>``, ``<topic>.<server>``,
``<topic>_fanout_<id>``, ``reply_<id>``, ``<topic>.<priority>``, one queue per pool) and
encodes every message exactly as it goes on the wire, so code tested on it behaves the
same on a broker. RPC queues disappear with their last server, which is what makes a call
to nobody fail at once with MessageUndeliverable.

``memory://`` is the process's default broker; ``memory://NAME`` a separate one, handy
for isolating tests.

Delayed messages (``cast_later``, ``notify_later``) wait on an event-loop timer that holds
the broker, not the bus: they are delivered even if the sending bus closed meanwhile, as
long as the process and its loop run; the precision is the loop's (about a millisecond).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from relaybus.drivers.memory.broker import (
    DEFAULT_EXCHANGE,
    Consumer,
    MemoryBroker,
    broker_named,
    queue_limits_from,
)
from relaybus.errors import (
    InvalidTransportURL,
    MalformedMessage,
    MessageUndeliverable,
    TransportError,
)
from relaybus.message import (
    PRIORITIES,
    DuplicateFilter,
    Notification,
    Reply,
    Request,
    build_reply,
    build_request,
    new_unique_id,
    pack,
    parse_notification,
    unpack,
    with_context,
)
from relaybus.target import Target
from relaybus.transport.base import (
    HANDED_OFF,
    Driver,
    IncomingNotification,
    IncomingRequest,
    NotificationHandler,
    NotificationVisitor,
    RequestHandler,
    Subscription,
    TapHandler,
)
from relaybus.transport.intake import AMQP_REPLY_QUEUE, Intake, Refused
from relaybus.transport.replies import Answer, PendingReplies
from relaybus.url import TransportURL

LOG = logging.getLogger(__name__)
MAX_DELAY = 30 * 24 * 3600.0


class _MemoryRequest(IncomingRequest):
    __slots__ = ("request", "_driver")

    def __init__(self, driver: MemoryDriver, request: Request) -> None:
        self.request = request
        self._driver = driver

    async def reply(self, result: Any = None, failure: dict[str, Any] | None = None) -> None:
        if self.request.msg_id is not None:
            self._driver.publish_reply(self.request, build_reply(self.request.msg_id, result,
                                                                 failure))

    async def heartbeat(self) -> None:
        if self.request.msg_id is not None:
            self._driver.publish_reply(self.request,
                                       build_reply(self.request.msg_id, ending=False))


class _MemoryNotification(IncomingNotification):
    __slots__ = ("notification", "_broker", "_queue", "_body", "_settled")

    def __init__(self, broker: MemoryBroker, queue: str, body: bytes,
                 notification: Notification) -> None:
        self.notification = notification
        self._broker = broker
        self._queue = queue
        self._body = body
        self._settled = False

    async def acknowledge(self) -> None:
        self._settled = True

    async def requeue(self) -> None:
        if not self._settled:
            self._settled = True
            self._broker.requeue(self._queue, self._body)

    async def retry_later(self, delay: float, context: Mapping[str, Any]) -> bool:
        if self._settled:
            return False
        self._settled = True
        body = with_context(self._body, context)
        asyncio.get_running_loop().call_later(delay, self._broker.enqueue, self._queue, body)
        return True


class _MemorySubscription(Subscription):
    def __init__(self, driver: MemoryDriver, consumers: list[Consumer]) -> None:
        self._driver = driver
        self._consumers = consumers

    async def stop(self) -> None:
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            await consumer.stop()
        self._driver.forget(self)


def _log_malformed(kind: str, queue: str, exc: Exception) -> None:
    LOG.warning("dropping malformed %s on queue %r: %s", kind, queue, exc)


class MemoryDriver(Driver):
    """In-process transport; see the module docstring."""

    def __init__(self, url: TransportURL, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._queue_limits = queue_limits_from(str(url), self.options)
        if len(url.hosts) > 1:
            raise InvalidTransportURL(str(url), "the memory transport takes one name, "
                                      "not a list of hosts")
        self._broker_name = (url.hosts[0].hostname if url.hosts else None) or "default"
        self._broker: MemoryBroker | None = None
        self._replies = PendingReplies()
        self._reply_queue: str | None = None
        self._reply_consumer: Consumer | None = None
        self._subscriptions: set[_MemorySubscription] = set()
        self._declared: set[tuple[str, str]] = set()
        #: the checks every received message goes through (and what they refused)
        self.intake = Intake("memory", self.max_message_size, AMQP_REPLY_QUEUE)

    max_delay = MAX_DELAY

    @property
    def broker(self) -> MemoryBroker:
        if self._broker is None:
            raise TransportError("the memory transport is closed")
        return self._broker

    async def connect(self) -> None:
        self._broker = broker_named(self._broker_name, self._queue_limits)

    # -- RPC ---------------------------------------------------------------------

    def _route(self, target: Target) -> tuple[str, str]:
        if target.topic is None:
            raise MessageUndeliverable(target, "the target has no topic")
        if target.fanout:
            return f"{target.topic}_fanout", ""
        key = f"{target.topic}.{target.server}" if target.server else target.topic
        return self.exchange_for(target), key

    async def send(self, target: Target, request: Request, *, wait_for_reply: bool,
                   timeout: float | None = None,
                   call_monitor_timeout: float | None = None) -> Reply | None:
        # the attribute read first: this runs per message (the property raises when closed)
        broker = self._broker if self._broker is not None else self.broker
        exchange, routing_key = self._route(target)
        msg_id = None
        if wait_for_reply:
            if self._reply_queue is None:
                self._ensure_reply_queue()
            msg_id = new_unique_id()
        body = self.check_size(pack(build_request(
            request.method, request.args, request.context, namespace=request.namespace,
            version=request.version, msg_id=msg_id, reply_q=self._reply_queue,
            call_monitor_timeout=call_monitor_timeout)))
        if msg_id is None:
            if not broker.publish(exchange, routing_key, body):
                raise MessageUndeliverable(target)
            return None
        self._replies.register(msg_id)
        try:
            if not broker.publish(exchange, routing_key, body):
                raise MessageUndeliverable(target)
            return await self._replies.wait(msg_id, timeout, call_monitor_timeout)
        finally:
            self._replies.discard(msg_id)

    async def gather(self, target: Target, request: Request, *, window: float,
                     limit: int) -> list[Answer]:
        broker = self.broker
        exchange, routing_key = self._route(target.replace(server=None, fanout=True))
        self._ensure_reply_queue()
        msg_id = new_unique_id()
        body = self.check_size(pack(build_request(
            request.method, request.args, request.context, namespace=request.namespace,
            version=request.version, msg_id=msg_id, reply_q=self._reply_queue)))
        self._replies.register_gathering(msg_id, limit)
        try:
            if not broker.publish(exchange, routing_key, body):
                raise MessageUndeliverable(target)
            return await self._replies.gather(msg_id, window)
        finally:
            self._replies.discard(msg_id)

    def _ensure_reply_queue(self) -> None:
        if self._reply_queue is None:
            name = f"reply_{new_unique_id()}"
            self.broker.declare_queue(name, auto_delete=True)
            self._reply_consumer = self.broker.consume(name, self._on_reply,
                                                       f"relaybus[memory].replies[{name}]")
            self._reply_queue = name

    def _on_reply(self, body: bytes) -> None:
        reply = self.intake.reply(body, self._reply_queue or "")
        if reply is not None:
            self._replies.deliver(reply)

    def publish_reply(self, request: Request, message: dict[str, Any]) -> None:
        """Send a reply to the caller's reply queue (dropped with a log if it is gone)."""
        self._publish_reply_body(request.reply_q or "", self.check_size(pack(message)),
                                 request.msg_id)

    def _publish_reply_body(self, reply_q: str, body: bytes, msg_id: str | None) -> None:
        broker = self._broker if self._broker is not None else self.broker
        if not broker.publish(DEFAULT_EXCHANGE, reply_q, body):
            LOG.info("reply queue %s is gone; dropping the reply to %s", reply_q, msg_id)

    async def cast_later(self, target: Target, request: Request, delay: float) -> None:
        broker = self.broker
        exchange, routing_key = self._route(target)
        body = self.check_size(pack(build_request(
            request.method, request.args, request.context, namespace=request.namespace,
            version=request.version)))

        def due() -> None:
            if not broker.publish(exchange, routing_key, body):
                LOG.info("a delayed cast of %s to %s was dropped: no server listens",
                         request.method, routing_key or exchange)
        asyncio.get_running_loop().call_later(delay, due)

    async def listen(self, target: Target, handler: RequestHandler) -> Subscription:
        broker = self.broker
        if target.topic is None:
            raise MessageUndeliverable(target, "a server target needs a topic")
        exchange = self.exchange_for(target)
        queues = [target.topic]
        broker.declare_queue(target.topic, auto_delete=True)
        broker.bind(target.topic, exchange, target.topic)
        if target.server:
            direct = f"{target.topic}.{target.server}"
            broker.declare_queue(direct, auto_delete=True)
            broker.bind(direct, exchange, direct)
            queues.append(direct)
        fanout_exchange = f"{target.topic}_fanout"
        fanout_queue = f"{fanout_exchange}_{new_unique_id()}"
        broker.declare_fanout_exchange(fanout_exchange)
        broker.declare_queue(fanout_queue, auto_delete=True)
        broker.bind(fanout_queue, fanout_exchange, target.topic)
        queues.append(fanout_queue)
        duplicates = DuplicateFilter()
        source = target.topic

        def on_body(body: bytes) -> Awaitable[None] | None:
            outcome = self.intake.request(body, source)
            if isinstance(outcome, Refused):
                if outcome.answer is not None:
                    self._publish_reply_body(*outcome.answer, None)
            elif not self.intake.is_duplicate(outcome, duplicates, source):
                pending = handler(_MemoryRequest(self, outcome))
                return None if pending is HANDED_OFF else pending
            return None

        consumers = [broker.consume(q, on_body, f"relaybus[memory].consumer[{q}]")
                     for q in queues]
        return self._remember(_MemorySubscription(self, consumers))

    async def rpc_topic_in_use(self, topic: str) -> bool:
        # every RPC server of a topic declares the topic's fanout exchange
        return self.broker.has_fanout_exchange(f"{topic}_fanout")

    # -- notifications -----------------------------------------------------------

    async def send_notification(self, target: Target, message: dict[str, Any],
                                priority: str) -> None:
        exchange, key, body = self._notification(target, message, priority)
        self.broker.publish(exchange, key, body)

    async def notify_later(self, target: Target, message: dict[str, Any], priority: str,
                           delay: float) -> None:
        exchange, key, body = self._notification(target, message, priority)
        asyncio.get_running_loop().call_later(delay, self.broker.publish, exchange, key, body)

    def _notification(self, target: Target, message: dict[str, Any],
                      priority: str) -> tuple[str, str, bytes]:
        """Encode a notification and declare the default pool's queue (so it waits there)."""
        broker = self.broker
        if target.topic is None:
            raise MessageUndeliverable(target, "a notification target needs a topic")
        body = self.check_size(pack(message))
        exchange = self.exchange_for(target)
        key = f"{target.topic}.{priority}"
        if (exchange, key) not in self._declared:
            broker.declare_queue(key)
            broker.bind(key, exchange, key)
            self._declared.add((exchange, key))
        return exchange, key, body

    async def listen_for_notifications(self, targets_and_priorities: Sequence[tuple[Target, str]],
                                       pool: str | None,
                                       handler: NotificationHandler) -> Subscription:
        broker = self.broker
        queue_names: list[str] = []
        for target, priority in targets_and_priorities:
            if target.topic is None:
                raise MessageUndeliverable(target, "a notification target needs a topic")
            key = f"{target.topic}.{priority}"
            name = pool or key
            broker.declare_queue(name)
            broker.bind(name, self.exchange_for(target), key)
            if name not in queue_names:
                queue_names.append(name)

        def on_body_for(queue: str) -> Callable[[bytes], Awaitable[None] | None]:
            def on_body(body: bytes) -> Awaitable[None] | None:
                if not self.intake.received(body, queue, "notification"):
                    return None
                try:
                    notification = parse_notification(unpack(body))
                except MalformedMessage as exc:
                    _log_malformed("notification", queue, exc)
                    return None
                pending = handler(_MemoryNotification(broker, queue, body, notification))
                return None if pending is HANDED_OFF else pending
            return on_body

        consumers = [broker.consume(q, on_body_for(q), f"relaybus[memory].listener[{q}]")
                     for q in queue_names]
        return self._remember(_MemorySubscription(self, consumers))

    async def visit_notifications(self, target: Target, visit: NotificationVisitor) -> int:
        broker = self.broker
        if target.topic is None:
            raise MessageUndeliverable(target, "a notification target needs a topic")
        visited = 0
        for priority in PRIORITIES:
            queue = f"{target.topic}.{priority}"
            for body in broker.waiting_bodies(queue):
                try:
                    message = unpack(body)
                except MalformedMessage:
                    continue
                visited += 1
                if await visit(priority, message):
                    broker.remove_waiting(queue, body)
        return visited

    async def tap(self, target: Target, handler: TapHandler) -> Subscription:
        if target.topic is None:
            raise MessageUndeliverable(target, "a tap needs a topic")
        topic, exchange = target.topic, self.exchange_for(target)

        def wants(ex: str, key: str) -> bool:
            return ex == f"{topic}_fanout" or (ex == exchange and (
                key == topic or key.startswith(f"{topic}.")))

        async def on_copy(copy: tuple[str, str, bytes]) -> None:
            published_to, key, body = copy
            try:
                message = unpack(body)
            except MalformedMessage as exc:
                _log_malformed("message", f"tap:{topic}", exc)
                return
            await handler(published_to, key, message)

        tap = self.broker.add_tap(wants, on_copy, f"relaybus[memory].tap[{topic}]")
        return self._remember(_MemorySubscription(self, [tap]))

    # -- lifecycle ---------------------------------------------------------------

    def _remember(self, subscription: _MemorySubscription) -> _MemorySubscription:
        self._subscriptions.add(subscription)
        return subscription

    def forget(self, subscription: _MemorySubscription) -> None:
        self._subscriptions.discard(subscription)

    async def close(self) -> None:
        if self._broker is None:
            return
        for subscription in list(self._subscriptions):
            await subscription.stop()
        if self._reply_consumer is not None:
            await self._reply_consumer.stop()
            self._reply_consumer = None
        self._replies.fail_all(TransportError("the transport was closed"))
        self._broker = None
