"""A small asyncio AMQP 0-9-1 client, just big enough for the rabbit driver.

Why not aio-pika or aiormq? Measured on the project's 2-core machine, a request/reply
round trip costs ~600 us on aio-pika and ~420 us on aiormq, most of it in their per-frame
queues and per-delivery tasks; relaybus's speed targets need less than that for the whole
stack. This package keeps aiormq's frame codec (pamqp) and replaces the plumbing with the
shortest path: frames are parsed in ``data_received`` and handed to plain callbacks,
writes are coalesced into one socket write per event-loop pass, publisher confirms are
settled in bulk, and the hot frames (publish, deliver, ack) are packed by hand.

Layers, each in its own module:

* :mod:`.codec` — packing and parsing the hot frames; pamqp does the rest.
* :mod:`.protocol` — bytes in, frames out; coalesced writes; flow control; heartbeats.
* :mod:`.link` — the little a channel needs from its connection (no import cycle).
* :mod:`.connection` — the handshake (PLAIN login, tuning, virtual host) and channel 0.
* :mod:`.channel` — synchronous methods, publishing with confirms and returns, consumers.
* :mod:`.errors` — the exceptions of this layer (the driver translates them).
"""

from relaybus.drivers.rabbit.amqp.channel import Channel, Delivery, Returned
from relaybus.drivers.rabbit.amqp.connection import Connection, ConnectParams
from relaybus.drivers.rabbit.amqp.errors import (
    AMQPError,
    ChannelClosed,
    ConnectionClosed,
    ConnectionLost,
    FrameTooLarge,
    HandshakeRefused,
    PublishNacked,
)

__all__ = [
    "AMQPError", "Channel", "ChannelClosed", "ConnectParams", "Connection",
    "ConnectionClosed", "ConnectionLost", "Delivery", "FrameTooLarge", "HandshakeRefused",
    "PublishNacked", "Returned",
]
