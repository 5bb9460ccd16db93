"""The ``rabbit://`` transport: relaybus on RabbitMQ, wire-compatible with oslo.messaging.

It puts on the broker exactly what oslo.messaging's rabbit driver does (exchanges, queue
names and declare arguments, message properties, the ``oslo.version`` envelope, replies,
heartbeats, notifications; see OSLO-RABBIT-WIRE.md), so relaybus and oslo.messaging
services call each other and share notifications without noticing.

One connection per bus (:mod:`.connector` keeps it, and brings it back), a few publishing
channels (:mod:`.publisher`), one channel per consumer (:mod:`.subscriptions`), and one
reply queue per bus whose replies are matched to calls by ``_msg_id``. Where relaybus
differs from oslo.messaging it is to keep its driver contract: requests are published
``mandatory`` so a request nobody can take fails at once with MessageUndeliverable, casts
and notifications wait for publisher confirms, and a server's idle topic queues are deleted
when it stops (``keep_rpc_queues=1`` keeps them, as oslo does).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from relaybus.drivers.rabbit.amqp import AMQPError, Returned, codec
from relaybus.drivers.rabbit.browse import visit_queue
from relaybus.drivers.rabbit.connector import Connector
from relaybus.drivers.rabbit.consumer import QueueConsumer
from relaybus.drivers.rabbit.declare import Declarer
from relaybus.drivers.rabbit.delay import MAX_DELAY, delay_queue
from relaybus.drivers.rabbit.errors import is_connection_error, translate
from relaybus.drivers.rabbit.eventlog import RabbitEventLog
from relaybus.drivers.rabbit.options import RabbitOptions, connect_params
from relaybus.drivers.rabbit.publisher import DIRECT, FANOUT, Publisher, returned_member
from relaybus.drivers.rabbit.subscriptions import (
    NotificationConsumer,
    ReplyConsumer,
    RPCServerConsumer,
    TapConsumer,
)
from relaybus.drivers.rabbit.topology import (
    DEFAULT_EXCHANGE,
    ExchangeSpec,
    QueueSpec,
    Topology,
    rpc_route,
)
from relaybus.errors import (
    MessageUndeliverable,
    MessagingError,
    MessagingTimeout,
    TransportError,
)
from relaybus.message import (
    PRIORITIES,
    Reply,
    Request,
    build_request,
    new_unique_id,
    pack,
    with_context,
)
from relaybus.target import Target
from relaybus.transport.base import (
    Driver,
    NotificationHandler,
    NotificationVisitor,
    RequestHandler,
    Subscription,
    TapHandler,
)
from relaybus.transport.eventlog import EventLog, Retention
from relaybus.transport.intake import AMQP_REPLY_QUEUE, Intake
from relaybus.transport.replies import Answer, PendingReplies
from relaybus.url import TransportURL

LOG = logging.getLogger(__name__)

PLAIN_PROPERTIES = codec.message_properties()
RESTORE_SLACK = 2.0  # seconds a peer may take, once reconnected, to declare its queues
_ROUTES_KEPT = 1024  # cast and notification routes remembered (then found anew)


class RabbitDriver(Driver):
    """RabbitMQ transport; see the module docstring and :class:`RabbitOptions`."""

    def __init__(self, url: TransportURL, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.rabbit_options = RabbitOptions.parse(url.masked(), self.options)
        self._topology = Topology(self.rabbit_options)
        #: the connection's name at the broker (``rabbitmqctl list_connections client_properties``)
        self.connection_name = f"relaybus:{os.getpid()}:{uuid.uuid4()}"
        # deliveries over max_message_size are discarded frame by frame, never assembled
        self._hosts = [dataclasses.replace(params, max_body_size=self.max_message_size)
                       for params in connect_params(url, self.rabbit_options,
                                                    self.connection_name)]
        self._connector: Connector | None = None
        self._publisher: Publisher | None = None
        self._replies = PendingReplies()
        #: the checks every received message goes through (and what they refused)
        self.intake = Intake("rabbit", self.max_message_size, AMQP_REPLY_QUEUE)
        self._calls: dict[str, Target] = {}
        self._reply_consumer: ReplyConsumer | None = None
        self._reply_starting: asyncio.Future[ReplyConsumer] | None = None
        self._subscriptions: set[QueueConsumer] = set()
        self._call_properties: dict[float | None, bytes] = {}
        # (exchange, topic, server, fanout) -> (publisher kind, exchange, key, what it needs)
        self._cast_routes: dict[tuple[str, str, str | None, bool],
                                tuple[str, str, str, ExchangeSpec]] = {}
        # (exchange, topic, priority) -> (routing key, the default pool's queue)
        self._notification_routes: dict[tuple[str, str, str], tuple[str, QueueSpec]] = {}
        ttl = self.rabbit_options.rpc_message_ttl
        self._cast_properties = codec.message_properties(
            expiration=str(math.ceil(ttl * 1000)) if ttl else None)
        self._closed = False
        #: a fanout call was sent: servers may still answer it after the gathering ended
        self._gathered = False

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect to the first host of the URL that answers.

        Raises:
            AuthenticationFailure: wrong credentials, or a virtual host that does not exist.
            ConnectionFailure: no host answered.
        """
        options = self.rabbit_options
        connector = Connector(self._hosts, reconnect_delay=options.reconnect_delay,
                              reconnect_delay_max=options.reconnect_delay_max,
                              tasks=self.tasks)
        await connector.start()
        connector.on_fatal(self._give_up)
        self._connector = connector
        # peers reconnect within their own backoff cap (taken to be like ours), then
        # declare their queues again
        self._publisher = Publisher(connector, confirms=options.publisher_confirms,
                                    on_returned_call=self._on_returned_call,
                                    restore_grace=options.reconnect_delay_max + RESTORE_SLACK)

    def connection_problem(self) -> str | None:
        if self._closed:
            return "the transport is closed"
        if self._connector is None:
            return "not connected yet"
        return self._connector.problem()

    def _live(self) -> tuple[Connector, Publisher]:
        if self._closed or self._connector is None or self._publisher is None:
            raise TransportError("the rabbit transport is closed" if self._closed
                                 else "the rabbit transport is not connected")
        return self._connector, self._publisher

    def _give_up(self, exc: MessagingError) -> None:
        self._replies.fail_all(exc)

    async def close(self) -> None:
        """Stop every consumer at once, fail waiting calls, delete the reply queue, close.

        Returns within ``close_timeout`` seconds (plus the consumers' cancellation) even
        when the broker does not answer: a resource alarm blocks the connection and the
        broker stops reading it. What is not done by then is abandoned and the socket is
        aborted (an undeleted reply queue expires by ``rabbit_transient_queues_ttl``).
        After a :meth:`gather`, the reply queue is left to expire the same way (see there).
        """
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.kill()
        self._subscriptions.clear()
        reply_consumer = self._reply_consumer
        if reply_consumer is not None:
            await reply_consumer.kill()
        self._replies.fail_all(TransportError("the transport was closed"))
        timeout = self.rabbit_options.close_timeout
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                if reply_consumer is not None and not self._gathered:
                    await self._delete_reply_queue(reply_consumer.name, timeout)
                if self._publisher is not None:
                    await self._publisher.close()
                if self._connector is not None:
                    await self._connector.close(_left(deadline) or 0.0)
        except TimeoutError:
            LOG.warning("the broker did not let the transport close within close_timeout "
                        "(%.1f s); dropping the connection", timeout)
        finally:
            if self._connector is not None:
                self._connector.abort()

    # -- RPC: sending ------------------------------------------------------------------

    async def send(self, target: Target, request: Request, *, wait_for_reply: bool,
                   timeout: float | None = None,
                   call_monitor_timeout: float | None = None) -> Reply | None:
        _, publisher = self._live()
        if target.topic is None:
            raise MessageUndeliverable(target, "the target has no topic")
        exchange = self.exchange_for(target)
        if not wait_for_reply:
            await self._cast(publisher, target, request, exchange)
            return None
        return await self._call(publisher, target, request, exchange, timeout,
                                call_monitor_timeout)

    async def _cast(self, publisher: Publisher, target: Target, request: Request,
                    exchange: str) -> None:
        message = build_request(request.method, request.args, request.context,
                                namespace=request.namespace, version=request.version)
        body = self.check_size(pack(message))
        assert target.topic is not None
        route = self._cast_routes.get((exchange, target.topic, target.server, target.fanout))
        if route is None:
            if len(self._cast_routes) >= _ROUTES_KEPT:
                self._cast_routes.clear()
            requires: ExchangeSpec
            if target.fanout:
                requires = self._topology.fanout_exchange(target.topic)
                route = (FANOUT, requires.name, "", requires)
            else:
                requires = self._topology.control_exchange(exchange)
                route = ("confirm", *rpc_route(exchange, target.topic, target.server, False),
                         requires)
            self._cast_routes[exchange, target.topic, target.server, target.fanout] = route
        kind, route_exchange, key, requires = route
        await publisher.publish_confirmed(route_exchange, key, body, self._cast_properties,
                                          mandatory=True, unique_id=message["_unique_id"],
                                          target=target,
                                          timeout=self.rabbit_options.send_timeout,
                                          kind=kind, requires=requires)

    max_delay = MAX_DELAY

    async def cast_later(self, target: Target, request: Request, delay: float) -> None:
        _, publisher = self._live()
        if target.topic is None:
            raise MessageUndeliverable(target, "the target has no topic")
        message = build_request(request.method, request.args, request.context,
                                namespace=request.namespace, version=request.version)
        exchange, key = rpc_route(self.exchange_for(target), target.topic, target.server,
                                  target.fanout)
        # no expiration property (rpc_message_ttl): it would end the delay early
        await self._publish_later(publisher, exchange, key, self.check_size(pack(message)),
                                  delay, target)

    async def _publish_later(self, publisher: Publisher, exchange: str, key: str,
                             body: bytes, delay: float, target: Target) -> None:
        """Publish to the delay queue that dead-letters to ``(exchange, key)`` when due."""
        timeout = self.rabbit_options.send_timeout
        queue = delay_queue(delay, exchange, key)
        await publisher.declare_queue(queue, timeout)
        await publisher.publish_confirmed(DEFAULT_EXCHANGE, queue.name, body,
                                          PLAIN_PROPERTIES, mandatory=True, unique_id=None,
                                          target=target, timeout=timeout, requires=queue)

    async def _call(self, publisher: Publisher, target: Target, request: Request,
                    exchange: str, timeout: float | None,
                    call_monitor_timeout: float | None) -> Reply:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        assert target.topic is not None
        reply_queue = self._reply_consumer.name if self._reply_consumer is not None \
            else await self._start_replies(timeout)
        msg_id = new_unique_id()
        body = self.check_size(pack(build_request(
            request.method, request.args, request.context, namespace=request.namespace,
            version=request.version, msg_id=msg_id, reply_q=reply_queue,
            call_monitor_timeout=call_monitor_timeout)))
        spec = self._topology.control_exchange(exchange)
        exchange, key = rpc_route(exchange, target.topic, target.server, False)
        properties = self._properties_for_call(timeout)
        replies = self._replies
        self._calls[msg_id] = target
        returns = 0
        try:
            while True:
                replies.register(msg_id)
                await self._publish_call(publisher, spec, exchange, key, body, properties,
                                         deadline)
                try:
                    return await replies.wait(msg_id, _left(deadline), call_monitor_timeout)
                except MessageUndeliverable:
                    # returned: never delivered, so sending it again is safe
                    returns += 1
                    if not await publisher.pause_after_return(returns, _left(deadline), "call"):
                        raise
        finally:
            replies.discard(msg_id)
            self._calls.pop(msg_id, None)

    async def gather(self, target: Target, request: Request, *, window: float,
                     limit: int) -> list[Answer]:
        """Publish the call to ``<topic>_fanout`` (declared first, confirmed, mandatory, as
        a fanout cast is) and gather the replies; returned: MessageUndeliverable."""
        _, publisher = self._live()
        if target.topic is None:
            raise MessageUndeliverable(target, "the target has no topic")
        reply_queue = self._reply_consumer.name if self._reply_consumer is not None \
            else await self._start_replies(self.rabbit_options.send_timeout)
        msg_id = new_unique_id()
        message = build_request(request.method, request.args, request.context,
                                namespace=request.namespace, version=request.version,
                                msg_id=msg_id, reply_q=reply_queue)
        body = self.check_size(pack(message))
        fanout = self._topology.fanout_exchange(target.topic)
        # servers may answer after the window or the limit: the reply queue is then left to
        # expire (rabbit_transient_queues_ttl) at close, as oslo.messaging's clients always
        # leave theirs, so a late answer lands there; an oslo server whose reply finds no
        # queue retries it for 60 s (missing_destination_retry_timeout) and logs an error
        self._gathered = True
        self._replies.register_gathering(msg_id, limit)
        try:
            # expires with the window: a server that takes it later answers nobody
            await publisher.publish_confirmed(
                fanout.name, "", body, self._properties_for_call(window), mandatory=True,
                unique_id=message["_unique_id"], target=target,
                timeout=self.rabbit_options.send_timeout, kind=FANOUT, requires=fanout)
            return await self._replies.gather(msg_id, window)
        finally:
            self._replies.discard(msg_id)

    async def _publish_call(self, publisher: Publisher, spec: ExchangeSpec, exchange: str,
                            key: str, body: bytes, properties: bytes,
                            deadline: float | None) -> None:
        while True:
            channel = publisher.channel_now(DIRECT) or await self._within(
                deadline, publisher.channel(DIRECT, _left(deadline)))
            if not publisher.is_declared(spec):  # on the connection it goes out on
                await self._within(deadline, publisher.ensure_exchange(spec, _left(deadline)))
            try:
                channel.publish(exchange, key, body, properties, mandatory=True)
                return
            except AMQPError as exc:
                if not is_connection_error(exc):
                    raise translate(exc, "publishing a call") from exc

    @staticmethod
    async def _within(deadline: float | None, step: Any) -> Any:
        """Await a step of a call; its waiting for a connection ends at the call's deadline."""
        try:
            return await step
        except MessagingError as exc:
            if deadline is not None and asyncio.get_running_loop().time() >= deadline - 0.01:
                raise MessagingTimeout(f"no connection to RabbitMQ within the call's timeout "
                                       f"({exc})") from exc
            raise

    def _properties_for_call(self, timeout: float | None) -> bytes:
        properties = self._call_properties.get(timeout)
        if properties is None:
            # oslo sends the call timeout as the expiration: a request nobody took in time
            # is dropped by the broker instead of being served for a caller long gone.
            expiration = str(math.ceil(timeout * 1000)) if timeout else None
            properties = codec.message_properties(expiration=expiration)
            if len(self._call_properties) < 64:
                self._call_properties[timeout] = properties
        return properties

    def _on_returned_call(self, returned: Returned) -> None:
        if returned.exchange == DEFAULT_EXCHANGE:
            LOG.info("a reply to %r was returned (%s %s): the caller is gone",
                     returned.routing_key, returned.reply_code, returned.reply_text)
            return
        msg_id = returned_member(returned.body, "_msg_id")
        target = self._calls.get(msg_id) if msg_id else None
        if msg_id is None or target is None:
            LOG.info("a request to %r/%r was returned (%s) after its caller stopped waiting",
                     returned.exchange, returned.routing_key, returned.reply_text)
            return
        self._replies.fail(msg_id, MessageUndeliverable(
            target, f"no queue is bound to exchange {returned.exchange!r} with routing key "
                    f"{returned.routing_key!r} ({returned.reply_code} {returned.reply_text})"))

    async def _start_replies(self, timeout: float | None) -> str:
        """Declare and consume this bus's reply queue, once (on the first call)."""
        if self._reply_starting is None:
            self._reply_starting = asyncio.get_running_loop().create_future()
            starting = self._reply_starting
            try:
                consumer = await self._new_reply_consumer(timeout)
            except BaseException as exc:
                self._reply_starting = None
                if isinstance(exc, asyncio.CancelledError):
                    starting.cancel()
                else:
                    starting.set_exception(exc)
                    starting.exception()
                raise
            self._reply_consumer = consumer
            starting.set_result(consumer)
        consumer = await asyncio.shield(self._reply_starting)
        return consumer.name

    async def _new_reply_consumer(self, timeout: float | None) -> ReplyConsumer:
        connector, _ = self._live()
        connection = await connector.connection(timeout)
        consumer = ReplyConsumer(connector, self._topology.reply_queue(), self._replies,
                                 self.intake)
        try:
            await consumer.start(connection)
        except AMQPError as exc:
            raise translate(exc, "setting up the reply queue") from exc
        return consumer

    async def _send_reply(self, reply_queue: str, body: bytes) -> None:
        """Publish a reply or heartbeat; a lost connection is logged, not raised.

        The intake refused requests whose ``_reply_q`` is not a reply queue; the check is
        repeated here so that no reply ever goes to another queue.
        """
        if not self.intake.reply_rule.allows(reply_queue):
            LOG.warning("dropping a reply to %r: not %s", reply_queue[:80],
                        self.intake.reply_rule.description)
            return
        if self._closed or self._publisher is None:
            LOG.info("transport closed: dropping a reply to %s", reply_queue)
            return
        publisher = self._publisher
        try:
            channel = publisher.channel_now(DIRECT) or await publisher.channel(
                DIRECT, self.rabbit_options.send_timeout)
            channel.publish(DEFAULT_EXCHANGE, reply_queue, body, PLAIN_PROPERTIES,
                            mandatory=True)
        except (AMQPError, MessagingError) as exc:
            LOG.warning("could not send a reply to %s: %s", reply_queue, exc)

    # -- RPC: serving ----------------------------------------------------------------

    async def listen(self, target: Target, handler: RequestHandler) -> Subscription:
        connector, publisher = self._live()
        if target.topic is None:
            raise MessageUndeliverable(target, "a server target needs a topic")
        exchange = self.exchange_for(target)
        shared = [self._topology.rpc_queue(exchange, target.topic)]
        if target.server:
            shared.append(self._topology.server_queue(exchange, target.topic, target.server))
        name = f"{target.topic}.{target.server}" if target.server else target.topic
        consumer = RPCServerConsumer(
            connector, publisher, name, shared, self._topology.fanout_queue(target.topic),
            self.rabbit_options.rabbit_qos_prefetch_count, handler=handler,
            send_reply=self._send_reply, check_size=self.check_size,
            keep_queues=self.rabbit_options.keep_rpc_queues, intake=self.intake)
        return await self._start(consumer, f"serving {name}")

    async def _start(self, consumer: QueueConsumer, what: str) -> Subscription:
        connector, _ = self._live()
        connection = await connector.connection(self.rabbit_options.send_timeout)
        try:
            await consumer.start(connection)
        except AMQPError as exc:
            raise translate(exc, what) from exc
        self._subscriptions.add(consumer)
        return _Tracked(self, consumer)

    async def rpc_topic_in_use(self, topic: str) -> bool:
        """Whether ``<topic>_fanout`` exists: every RPC server of a topic (relaybus's and
        oslo.messaging's) declares it, notification pools never do."""
        connector, _ = self._live()
        connection = await connector.connection(self.rabbit_options.send_timeout)
        declarer = Declarer(connection)
        try:
            return await declarer.exchange_exists(self._topology.fanout_exchange(topic).name)
        except AMQPError as exc:
            raise translate(exc, f"looking for RPC topic {topic!r}") from exc
        finally:
            await declarer.close()

    # -- notifications -----------------------------------------------------------------

    async def send_notification(self, target: Target, message: dict[str, Any],
                                priority: str) -> None:
        _, publisher = self._live()
        if target.topic is None:
            raise MessageUndeliverable(target, "a notification target needs a topic")
        body = self.check_size(pack(message))
        exchange = self.exchange_for(target)
        route = self._notification_routes.get((exchange, target.topic, priority))
        if route is None:
            if len(self._notification_routes) >= _ROUTES_KEPT:
                self._notification_routes.clear()
            # Like oslo, declare the default pool's queue first, so notifications wait
            # there even while no listener runs.
            route = (self._topology.notification_key(target.topic, priority),
                     self._topology.notification_queue(exchange, target.topic, priority))
            self._notification_routes[exchange, target.topic, priority] = route
        await publisher.publish_confirmed(
            exchange, route[0], body, PLAIN_PROPERTIES, mandatory=False, unique_id=None,
            target=target, timeout=self.rabbit_options.send_timeout, requires=route[1])

    async def notify_later(self, target: Target, message: dict[str, Any], priority: str,
                           delay: float) -> None:
        _, publisher = self._live()
        if target.topic is None:
            raise MessageUndeliverable(target, "a notification target needs a topic")
        body = self.check_size(pack(message))
        exchange = self.exchange_for(target)
        # the default pool's queue exists before the message is due, so it waits there
        await publisher.ensure(
            self._topology.notification_queue(exchange, target.topic, priority),
            self.rabbit_options.send_timeout)
        await self._publish_later(publisher, exchange,
                                  self._topology.notification_key(target.topic, priority),
                                  body, delay, target)

    async def _retry_into(self, queue: str, body: bytes, delay: float,
                          context: Mapping[str, Any]) -> None:
        """A broker-side retry: the notification (its context updated) waits in a delay
        queue that dead-letters it into ``queue`` (this pool's only) when due."""
        _, publisher = self._live()
        await self._publish_later(publisher, DEFAULT_EXCHANGE, queue,
                                  self.check_size(with_context(body, context)), delay,
                                  Target(topic=queue))

    async def visit_notifications(self, target: Target, visit: NotificationVisitor) -> int:
        connector, _ = self._live()
        if target.topic is None:
            raise MessageUndeliverable(target, "a notification target needs a topic")
        exchange = self.exchange_for(target)
        connection = await connector.connection(self.rabbit_options.send_timeout)
        visited = 0
        for priority in PRIORITIES:
            queue = self._topology.notification_queue(exchange, target.topic, priority).name
            try:
                visited += await visit_queue(connection, queue, priority, visit)
            except AMQPError as exc:
                raise translate(exc, f"reading queue {queue!r}") from exc
        return visited

    async def listen_for_notifications(self, targets_and_priorities: Sequence[tuple[Target, str]],
                                       pool: str | None,
                                       handler: NotificationHandler) -> Subscription:
        connector, _ = self._live()
        queues: dict[str, QueueSpec] = {}
        for target, priority in targets_and_priorities:
            if target.topic is None:
                raise MessageUndeliverable(target, "a notification target needs a topic")
            spec = self._topology.notification_queue(self.exchange_for(target), target.topic,
                                                     priority, pool)
            known = queues.get(spec.name)
            if known is not None:  # a pool's one queue, bound once per topic and priority
                spec = QueueSpec(spec.name, spec.durable, spec.auto_delete, spec.arguments,
                                 tuple(dict.fromkeys(known.bindings + spec.bindings)))
            queues[spec.name] = spec
        name = pool or ",".join(queues)
        consumer = NotificationConsumer(connector, name, list(queues.values()),
                                        self.rabbit_options.rabbit_qos_prefetch_count,
                                        handler=handler, intake=self.intake,
                                        retry=self._retry_into)
        return await self._start(consumer, f"listening on {name}")

    # -- watching ----------------------------------------------------------------------

    async def tap(self, target: Target, handler: TapHandler) -> Subscription:
        """Watch a topic's requests and notifications through a private queue.

        See :class:`~relaybus.drivers.rabbit.subscriptions.TapConsumer` for the one way a
        tap is visible: requests to a topic with no server wait instead of failing.
        """
        connector, _ = self._live()
        if target.topic is None:
            raise MessageUndeliverable(target, "a tap needs a topic")
        queue = self._topology.tap_queue(self.exchange_for(target), target.topic)
        return await self._start(TapConsumer(connector, queue, handler, self.intake),
                                 f"tapping {target.topic}")

    async def event_log(self, name: str, retention: Retention) -> EventLog:
        """A stream queue named ``name`` (see :mod:`~relaybus.drivers.rabbit.eventlog`)."""
        connector, _ = self._live()
        log = RabbitEventLog(connector, name, retention, self.rabbit_options.send_timeout)
        await log.declare()
        return log

    def forget(self, consumer: QueueConsumer) -> None:
        self._subscriptions.discard(consumer)

    async def _delete_reply_queue(self, name: str, timeout: float) -> None:
        """Delete this bus's reply queue at close (instead of leaving it to x-expires)."""
        if self._publisher is None or self._connector is None \
                or self._connector.current is None:
            return  # not connected: the queue expires by itself
        if not await self._publisher.delete_queue(name, if_unused=False, if_empty=False,
                                                  timeout=timeout):
            LOG.info("reply queue %r not deleted at close; it expires by itself", name)


class _Tracked(Subscription):
    """A started consumer, forgotten by the driver once stopped."""

    def __init__(self, driver: RabbitDriver, consumer: QueueConsumer) -> None:
        self._driver = driver
        self._consumer = consumer

    async def stop(self) -> None:
        await self._consumer.stop()
        self._driver.forget(self._consumer)


def _left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(deadline - asyncio.get_running_loop().time(), 0.0)
