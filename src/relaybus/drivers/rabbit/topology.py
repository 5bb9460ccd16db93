"""oslo.messaging's RabbitMQ topology: names, routing keys and declare arguments.

Pure functions of a Target and the options (no I/O), following OSLO-RABBIT-WIRE.md §1-2.
Declaring an object that already exists must repeat its ``durable``/``auto_delete`` and
arguments exactly, or RabbitMQ answers 406 and closes the channel; so every declaration
the driver makes comes from here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from relaybus.drivers.rabbit.options import RabbitOptions
from relaybus.message import new_unique_id

DEFAULT_EXCHANGE = ""
TOPIC = "topic"
FANOUT = "fanout"


@dataclasses.dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """An exchange and how to declare it."""

    name: str
    type: str
    durable: bool
    auto_delete: bool


@dataclasses.dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue, how to declare it, and what it is bound to: (exchange, routing key)s."""

    name: str
    durable: bool
    auto_delete: bool
    arguments: dict[str, Any]
    bindings: tuple[tuple[ExchangeSpec, str], ...] = ()
    exclusive: bool = False

    @property
    def quorum(self) -> bool:
        """Whether it is declared as a quorum queue (``x-queue-type: quorum``)."""
        return self.arguments.get("x-queue-type") == "quorum"


class Topology:
    """The exchanges and queues of one transport's options."""

    def __init__(self, options: RabbitOptions) -> None:
        self.options = options
        quorum = options.rabbit_quorum_queue
        self._durable = options.amqp_durable_queues or quorum
        self._auto_delete = options.amqp_auto_delete
        self._queue_args = _queue_arguments(options, quorum=quorum)
        # reply and fanout queues: quorum ones (durable) with rabbit_transient_quorum_queue
        self._transient_durable = options.rabbit_transient_quorum_queue
        self._transient_args = _queue_arguments(options, quorum=self._transient_durable)
        ttl = options.rabbit_transient_queues_ttl
        if ttl:
            self._transient_args["x-expires"] = ttl * 1000

    # -- exchanges -----------------------------------------------------------------

    def control_exchange(self, name: str) -> ExchangeSpec:
        """The topic exchange of RPC requests and notifications (``openstack``, ``nova``)."""
        return ExchangeSpec(name, TOPIC, durable=self._durable, auto_delete=self._auto_delete)

    def fanout_exchange(self, topic: str) -> ExchangeSpec:
        """``<topic>_fanout``: every server of the topic gets a copy."""
        return ExchangeSpec(f"{topic}_fanout", FANOUT, durable=self._transient_durable,
                            auto_delete=True)

    # -- RPC queues ------------------------------------------------------------------

    def rpc_queue(self, exchange: str, topic: str) -> QueueSpec:
        """``<topic>``, shared round-robin by the servers of the topic."""
        return self._shared_queue(topic, self.control_exchange(exchange), topic)

    def server_queue(self, exchange: str, topic: str, server: str) -> QueueSpec:
        """``<topic>.<server>``, for requests sent to one named server."""
        name = f"{topic}.{server}"
        return self._shared_queue(name, self.control_exchange(exchange), name)

    def fanout_queue(self, topic: str) -> QueueSpec:
        """``<topic>_fanout_<32 hex>``, one per server, expiring when unused."""
        return QueueSpec(f"{topic}_fanout_{new_unique_id()}", durable=self._transient_durable,
                         auto_delete=False,
                         arguments=dict(self._transient_args),
                         bindings=((self.fanout_exchange(topic), topic),))

    def reply_queue(self) -> QueueSpec:
        """``reply_<32 hex>``, one per client bus, reached through the default exchange."""
        return QueueSpec(f"reply_{new_unique_id()}", durable=self._transient_durable,
                         auto_delete=False, arguments=dict(self._transient_args))

    # -- notifications ---------------------------------------------------------------

    @staticmethod
    def notification_key(topic: str, priority: str) -> str:
        """``<topic>.<priority>``: the routing key, and the default pool's queue name."""
        return f"{topic}.{priority}"

    def notification_queue(self, exchange: str, topic: str, priority: str,
                           pool: str | None = None) -> QueueSpec:
        """The queue a listener of ``pool`` (None: the default pool) consumes."""
        key = self.notification_key(topic, priority)
        return self._shared_queue(pool or key, self.control_exchange(exchange), key)

    # -- watching ----------------------------------------------------------------------

    def tap_queue(self, exchange: str, topic: str) -> QueueSpec:
        """A private queue that gets a copy of everything sent to ``topic``: requests
        (``<topic>``, ``<topic>.<server>``, fanout) and notifications (``<topic>.<priority>``).
        """
        control = self.control_exchange(exchange)
        return QueueSpec(f"relaybus_tap_{topic}_{new_unique_id()[:12]}", durable=False,
                         auto_delete=True, arguments={}, exclusive=True,
                         bindings=((control, topic), (control, f"{topic}.#"),
                                   (self.fanout_exchange(topic), topic)))

    def _shared_queue(self, name: str, exchange: ExchangeSpec, key: str) -> QueueSpec:
        return QueueSpec(name, durable=self._durable, auto_delete=self._auto_delete,
                         arguments=dict(self._queue_args), bindings=((exchange, key),))


def _queue_arguments(options: RabbitOptions, *, quorum: bool) -> dict[str, Any]:
    """The declare arguments oslo.messaging gives a queue (``_get_queue_arguments``)."""
    arguments: dict[str, Any] = {}
    if options.rabbit_ha_queues:
        arguments["x-ha-policy"] = "all"
    if quorum:
        arguments["x-queue-type"] = "quorum"
        for key, value in (("x-delivery-limit", options.rabbit_quorum_delivery_limit),
                           ("x-max-in-memory-length", options.rabbit_quorum_max_memory_length),
                           ("x-max-in-memory-bytes", options.rabbit_quorum_max_memory_bytes)):
            if value:
                arguments[key] = value
    return arguments


def rpc_route(exchange: str, topic: str, server: str | None, fanout: bool) -> tuple[str, str]:
    """Where a request is published: (exchange, routing key)."""
    if fanout:
        return f"{topic}_fanout", ""
    return exchange, f"{topic}.{server}" if server else topic
