"""The driver interface: what every transport must do, stated as semantics.

A driver moves encoded messages between processes. It knows targets, queues and
replies; it knows nothing of endpoints, dispatch, versions or serializers, which live once
in :mod:`relaybus.rpc` and :mod:`relaybus.notify` above it.

Semantics every driver guarantees:

* **Addressing.** A request to ``Target(topic=T)`` reaches exactly one of the servers
  listening on T (round-robin); to ``Target(topic=T, server=S)`` only the servers named S
  on T; a fanout request (``fanout=True``) every server on T once. Notifications to
  ``(target, priority)`` reach one listener of every pool (listeners without a pool form
  one default pool), and wait in the broker while no listener runs, where it can keep them.
* **Undeliverable.** A request that no listener can take fails at once with
  :class:`~relaybus.errors.MessageUndeliverable`, before any timeout.
* **Replies.** :meth:`Driver.send` with ``wait_for_reply`` returns the final reply for that
  request only, or raises :class:`~relaybus.errors.MessagingTimeout` when ``timeout``
  passes, or when ``call_monitor_timeout`` passes without a heartbeat. A cancelled send
  leaves nothing pending behind. Late replies are dropped.
* **Gathering.** :meth:`Driver.gather` sends one call fanout and returns every final
  reply that arrived within its window (each once, at most ``limit``); the collecting is
  :meth:`relaybus.transport.replies.PendingReplies.gather`'s, once for every driver.
* **Encoding.** Every message is encoded before it leaves the caller (so ``TypeError`` for
  unencodable values and :class:`~relaybus.errors.MessageTooLarge` happen at the caller,
  before anything is sent) and decoded at the receiver; a malformed message is logged once
  and dropped (or dead-lettered), never passed on and never fatal to the listener.
* **Handlers.** Handlers are awaited one message at a time per subscription; they are
  expected to hand work off quickly. A handler may return :data:`HANDED_OFF`, an
  awaitable that is already finished, when it handed the message off without waiting; a
  driver may test for it (``is HANDED_OFF``) to skip the await. A subscription's
  ``stop()`` stops new deliveries and returns once every message already taken from the
  broker has been handed to the handler; nothing taken is dropped.
* **Notifications are at-least-once**: a notification leaves the broker only once its
  handler called ``acknowledge()``; ``requeue()`` gives it back for another delivery.
* **close()** is idempotent; after it, sends raise
  :class:`~relaybus.errors.TransportError` and no handler is called again.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import Any

from relaybus.errors import MessageTooLarge, TransportError
from relaybus.message import Notification, Reply, Request
from relaybus.target import Target
from relaybus.transport.eventlog import EventLog, Retention
from relaybus.transport.replies import Answer
from relaybus.transport.tasks import TaskOwner
from relaybus.url import TransportURL

DEFAULT_CONTROL_EXCHANGE = "openstack"
DEFAULT_MAX_MESSAGE_SIZE = 8 * 1024 * 1024


class IncomingRequest(abc.ABC):
    """A request a server received; answer a call with exactly one :meth:`reply`."""

    request: Request

    @abc.abstractmethod
    async def reply(self, result: Any = None, failure: dict[str, Any] | None = None) -> None:
        """Send the final reply of a call (no-op for a cast). ``failure`` is a failure dict."""

    @abc.abstractmethod
    async def heartbeat(self) -> None:
        """Tell the caller the call is still running (call-monitor heartbeat)."""


class IncomingNotification(abc.ABC):
    """A notification a listener received; settle it with acknowledge() or requeue()."""

    notification: Notification

    @abc.abstractmethod
    async def acknowledge(self) -> None:
        """The notification is handled: remove it from the broker."""

    @abc.abstractmethod
    async def requeue(self) -> None:
        """Give the notification back to the broker for another delivery."""

    async def retry_later(self, delay: float, context: Mapping[str, Any]) -> bool:
        """Settle this delivery by having the broker deliver the notification again, to
        this pool only, ``delay`` seconds from now, in a way that survives this consumer's
        restart; ``context`` members are added to its context where the transport rewrites
        the message (JetStream cannot: it counts deliveries instead, see
        :attr:`deliveries`). Returns False, doing nothing, when the transport cannot (the
        default): the caller then waits in process.
        """
        return False

    @property
    def deliveries(self) -> int | None:
        """How many times the broker delivered this copy of the notification, this time
        included, where it counts (JetStream; RabbitMQ quorum queues on a redelivery); None
        elsewhere. A broker-side retry that republishes (RabbitMQ) starts a new copy and
        carries its attempt in the context instead."""
        return None


class _HandedOff:
    """An awaitable that is already finished (awaiting it returns None at once)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # a generator that ends at once

    def __repr__(self) -> str:
        return "HANDED_OFF"


#: What a handler returns when it has handed the message off without waiting (see the
#: module docstring); awaiting it does nothing.
HANDED_OFF: Awaitable[None] = _HandedOff()

RequestHandler = Callable[[IncomingRequest], Awaitable[None]]
NotificationHandler = Callable[[IncomingNotification], Awaitable[None]]
TapHandler = Callable[[str, str, dict[str, Any]], Awaitable[None]]
#: ``visit(priority, message)`` -> True to remove the stored notification, False to keep it
NotificationVisitor = Callable[[str, dict[str, Any]], Awaitable[bool]]


class Subscription(abc.ABC):
    """A running consumer created by :meth:`Driver.listen` or ``listen_for_notifications``."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop new deliveries; hand everything already received to the handler; idempotent."""


class Driver(abc.ABC):
    """A transport. One instance per bus; it owns the connection(s) to its broker.

    Args:
        url: the parsed transport URL.
        control_exchange: the exchange used when a Target names none.
        max_message_size: the largest encoded message, in bytes, that may be sent.
        options: driver-specific options (from the URL query and ``connect(**options)``);
            a driver rejects the ones it does not know with ``InvalidTransportURL``.
    """

    def __init__(
        self,
        url: TransportURL,
        *,
        control_exchange: str = DEFAULT_CONTROL_EXCHANGE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        **options: Any,
    ) -> None:
        self.url = url
        self.control_exchange = control_exchange
        self.max_message_size = max_message_size
        self.options = options
        #: the owner of every background task this driver starts (ended by Bus.close)
        self.tasks = TaskOwner(f"relaybus[{url.scheme}]")

    def exchange_for(self, target: Target) -> str:
        """The exchange a target's messages go through."""
        return target.exchange or self.control_exchange

    def check_size(self, body: bytes) -> bytes:
        """Return ``body``, or raise MessageTooLarge when it is over max_message_size."""
        if len(body) > self.max_message_size:
            raise MessageTooLarge(len(body), self.max_message_size)
        return body

    @abc.abstractmethod
    async def connect(self) -> None:
        """Reach the broker. Raises ConnectionFailure / AuthenticationFailure."""

    def connection_problem(self) -> str | None:
        """Why this transport cannot carry messages right now, or None when it can.

        Cheap and without I/O (readiness probes ask it often): a connection being
        re-established says so, and so does a transport that gave up or was closed. A
        transport without a connection to lose (the default) always answers None.
        """
        return None

    @abc.abstractmethod
    async def send(
        self,
        target: Target,
        request: Request,
        *,
        wait_for_reply: bool,
        timeout: float | None = None,
        call_monitor_timeout: float | None = None,
    ) -> Reply | None:
        """Send a request; with ``wait_for_reply`` return its final reply.

        Raises:
            MessageUndeliverable: nobody listens on the target.
            MessagingTimeout: no final reply (or no heartbeat) in time.
            MessageTooLarge, TypeError: the request cannot be encoded or is too large.
        """

    async def gather(self, target: Target, request: Request, *, window: float,
                     limit: int) -> list[Answer]:
        """Send ``request`` as a call to every server of ``target.topic`` (its fanout
        route, whatever ``target.fanout`` says) and gather their final replies.

        Every server that gets a fanout request carrying a reply address answers it, as
        oslo.messaging's servers do, so this reaches relaybus's and oslo's alike. Replies
        that arrive within ``window`` seconds of the send are returned in order of arrival,
        each with its time, each once; at most ``limit`` (then it returns at once). A
        transport implements only the sending; the gathering is
        :meth:`~relaybus.transport.replies.PendingReplies.gather`.

        Raises:
            MessageUndeliverable: nobody listens on the topic (where the broker says so;
                otherwise the result is an empty list).
            MessageTooLarge, TypeError: the request cannot be encoded or is too large.
            TransportError: the transport cannot gather replies (the default).
        """
        raise TransportError(f"the {self.url.scheme} transport cannot gather replies")

    @abc.abstractmethod
    async def listen(self, target: Target, handler: RequestHandler) -> Subscription:
        """Consume requests for ``target`` (its topic, topic.server and fanout)."""

    @abc.abstractmethod
    async def send_notification(
        self, target: Target, message: dict[str, Any], priority: str
    ) -> None:
        """Publish a notification object (see :func:`relaybus.message.build_notification`)."""

    @abc.abstractmethod
    async def listen_for_notifications(
        self,
        targets_and_priorities: Sequence[tuple[Target, str]],
        pool: str | None,
        handler: NotificationHandler,
    ) -> Subscription:
        """Consume notifications of those topics and priorities, as a member of ``pool``."""

    async def rpc_topic_in_use(self, topic: str) -> bool:
        """Whether RPC servers of ``topic`` use (or used) a queue named ``topic`` here.

        A notification pool's queue is named after the pool (oslo.messaging's topology),
        so a pool named like an RPC topic would share that topic's queue: requests would
        reach the listener and notifications the servers, both dropped as malformed.
        Listeners ask this before they start. Transports whose pools and RPC topics never
        share a queue answer False (the default).
        """
        return False

    async def tap(self, target: Target, handler: TapHandler) -> Subscription:
        """Watch the requests and notifications of ``target.topic`` without taking them.

        ``handler(exchange, routing_key, message)`` gets a decoded copy of every request
        sent to the topic (any server, a named server, fanout) and every notification of
        that notification topic; consumers get their messages as if no tap were there.

        Raises:
            TransportError: the transport cannot tap (the default).
        """
        raise TransportError(f"the {self.url.scheme} transport cannot tap messages")

    async def visit_notifications(self, target: Target, visit: NotificationVisitor) -> int:
        """Show ``visit`` each notification stored for ``target``, oldest first.

        Stored means waiting for the topic's default pool (RabbitMQ, memory: its queues
        ``<topic>.<priority>``; JetStream: the topic's stream). Each one is held while
        ``visit(priority, message)`` runs and removed when it returns True (so a visit that
        re-sends a message elsewhere and then returns True never loses it). Notifications
        stored after the visit began, or taken by a listener meanwhile, are not visited;
        malformed ones are skipped and kept. Returns how many were visited.

        Raises:
            TransportError: the transport cannot show stored notifications (the default).
        """
        raise TransportError(f"the {self.url.scheme} transport cannot show stored "
                             f"notifications")

    #: the longest delay, in seconds, :meth:`cast_later` and :meth:`notify_later` accept
    #: (0: this transport cannot delay messages)
    max_delay: float = 0.0

    async def cast_later(self, target: Target, request: Request, delay: float) -> None:
        """Send a cast that reaches its servers ``delay`` seconds from now, not earlier.

        The request is encoded now (TypeError, MessageTooLarge at the caller). Whether
        anybody listens is not checked: servers may start within the delay; a cast nobody
        takes when it is due is dropped, as a cast to nobody is. Where the broker keeps it,
        the delayed cast survives the sender and a broker restart once this returns.

        Raises:
            TransportError: the transport cannot delay messages (the default).
        """
        raise TransportError(f"the {self.url.scheme} transport cannot delay messages")

    async def notify_later(self, target: Target, message: dict[str, Any], priority: str,
                           delay: float) -> None:
        """Publish a notification that reaches its listeners ``delay`` seconds from now.

        As :meth:`send_notification`, and as :meth:`cast_later` about when and how long.

        Raises:
            TransportError: the transport cannot delay messages (the default).
        """
        raise TransportError(f"the {self.url.scheme} transport cannot delay messages")

    async def event_log(self, name: str, retention: Retention) -> EventLog:
        """The broker's retained log ``name`` (created if missing; see :mod:`.eventlog`).

        Raises:
            TransportError: the transport keeps no logs (the default), or the broker
                refused to create it.
        """
        raise TransportError(f"the {self.url.scheme} transport keeps no event logs")

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection and task; idempotent."""
