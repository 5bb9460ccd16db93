"""Exceptions of the AMQP layer; the driver maps them to relaybus's own at its boundary.

::

    AMQPError
    ├── ConnectionLost        the socket went away (or heartbeats stopped)
    │   └── FrameTooLarge     the broker sent a frame over the negotiated frame_max
    ├── ConnectionClosed      the broker (or we) closed the connection, with a reply code
    │   └── HandshakeRefused  closed while logging in or opening the virtual host
    ├── ChannelClosed         the broker closed one channel, with a reply code
    └── PublishNacked         the broker nacked a confirmed publish (the channel stays open)
"""

from __future__ import annotations

# AMQP reply codes this package and the driver act on.
NOT_FOUND = 404
ACCESS_REFUSED = 403
PRECONDITION_FAILED = 406
RESOURCE_LOCKED = 405
NOT_ALLOWED = 530
NO_ROUTE = 312
CONNECTION_FORCED = 320


class AMQPError(Exception):
    """Base of this layer's errors."""


class ConnectionLost(AMQPError):
    """The connection ended without a close handshake (socket error, missed heartbeats)."""


class FrameTooLarge(ConnectionLost):
    """The peer announced a frame larger than the negotiated ``frame_max``.

    The client drops the connection as soon as the frame's header arrives, without
    buffering its payload (AMQP 0-9-1 §4.2.3: a peer must not send frames over
    ``frame_max``; a larger one is a framing error).

    Attributes:
        size: the announced frame size, header and end octet included.
        frame_max: the limit in force.
    """

    def __init__(self, size: int, frame_max: int) -> None:
        self.size = size
        self.frame_max = frame_max
        super().__init__(f"AMQP framing error: the broker sent a {size}-byte frame, over the "
                         f"negotiated frame_max of {frame_max} bytes")


class ConnectionClosed(AMQPError):
    """The connection was closed with ``Connection.Close``.

    Attributes:
        code: the AMQP reply code (e.g. 320 CONNECTION_FORCED when the broker stops).
        text: the broker's reply text.
    """

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"connection closed by the broker: {code} {text}")


class HandshakeRefused(ConnectionClosed):
    """The broker refused the login (403) or the virtual host (530) while connecting."""


class ChannelClosed(AMQPError):
    """A channel was closed with ``Channel.Close`` (e.g. 404 NOT_FOUND, 406 PRECONDITION_FAILED).

    Attributes:
        code: the AMQP reply code (0 when the channel ended with its connection).
        text: the broker's reply text.
    """

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"channel closed: {code} {text}" if code else text)


class PublishNacked(AMQPError):
    """The broker answered a publish with ``Basic.Nack`` instead of ``Basic.Ack``.

    The channel stays open, but it may be unable to take anything more: RabbitMQ 3.10 nacks
    every publish on a confirm channel opened while a quorum queue's leader was down, for
    as long as that node stays down, while a brand-new channel works at once. So the
    publisher drops the channel and sends the message again on a new one.
    """
