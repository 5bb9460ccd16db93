"""Delayed messages on RabbitMQ without a plugin: a queue-wide TTL into a dead-letter exchange.

A message delayed by d seconds is published (confirmed, persistent) through the default
exchange to the delay queue ``relaybus.delay.<ms>.<exchange>.<routing key>``, declared
with ``x-message-ttl: <ms>`` and ``x-dead-letter-exchange``/``x-dead-letter-routing-key``
naming where the message was going. Nobody consumes a delay queue: when a message's time
is up, RabbitMQ dead-letters it to its destination, which then routes it as if it had
just been sent.

Why one queue per delay: RabbitMQ expires messages only at the head of a queue, so with
per-message TTLs a long delay at the head would hold back a short one behind it. In a
queue where every message has the same TTL, the head always expires first, so no message
waits for another. Delays are rounded *up* to three significant digits of milliseconds
(0.4 s, 12.3 s, 4.57 min), which bounds both the number of queues and the lateness (at most
1 % plus the broker's expiry timer); a delay queue deletes itself (``x-expires``) one hour
after its last message could have left.

The queue is declared again before every delayed publish, because ``x-expires`` counts
from the last declaration (publishing does not renew it).

Limits: the longest TTL RabbitMQ takes is 2^32 - 1 ms (~49.7 days); classic queues
dead-letter at most once, so a message due while the node crashes (not a clean restart)
can be lost; a delayed message whose destination exchange is gone when it is due (the
fanout exchange of a topic whose servers all left) is dropped by the broker.
"""

from __future__ import annotations

import hashlib
import math

from relaybus.drivers.rabbit.topology import QueueSpec

MAX_DELAY = 49 * 24 * 3600.0  # under RabbitMQ's 2^32 - 1 ms once rounded up
EXPIRES_AFTER_MS = 3600 * 1000
PREFIX = "relaybus.delay"
MAX_NAME = 255


def delay_ms(delay: float) -> int:
    """The delay in whole milliseconds, rounded up to three significant digits."""
    ms = max(1, math.ceil(delay * 1000))
    step = 10 ** max(0, len(str(ms)) - 3)
    return -(-ms // step) * step


def delay_queue(delay: float, exchange: str, routing_key: str) -> QueueSpec:
    """The delay queue of a delay towards ``(exchange, routing_key)``."""
    ms = delay_ms(delay)
    name = f"{PREFIX}.{ms}.{exchange}.{routing_key}"
    if len(name.encode()) > MAX_NAME:
        digest = hashlib.sha256(f"{exchange}\0{routing_key}".encode()).hexdigest()[:32]
        name = f"{PREFIX}.{ms}.{digest}"
    return QueueSpec(name, durable=True, auto_delete=False, arguments={
        "x-message-ttl": ms, "x-expires": ms + EXPIRES_AFTER_MS,
        "x-dead-letter-exchange": exchange, "x-dead-letter-routing-key": routing_key})
