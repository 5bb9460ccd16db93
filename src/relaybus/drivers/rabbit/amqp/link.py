"""What a channel needs from the connection it lives on, and nothing more.

:class:`~.channel.Channel` depends on this small interface instead of on
:class:`~.connection.Connection` itself, so ``connection`` imports ``channel`` and never
the other way round (no import cycle), and a channel can be driven by any owner that
provides these few members.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from relaybus.drivers.rabbit.amqp.protocol import FrameProtocol


class ChannelOwner(Protocol):
    """The connection side of a channel.

    Attributes:
        protocol: the framing protocol the channel writes its frames to.
        frame_max: the negotiated largest frame, header and end octet included.
        unblocked: set while the broker accepts publishes (``connection.blocked`` clears it).
        max_body_size: a delivery announcing a larger body is not assembled: its body frames
            are counted and dropped, and it arrives empty with its announced ``body_size``
            (None: no limit).
    """

    protocol: FrameProtocol
    frame_max: int
    max_body_size: int | None
    unblocked: asyncio.Event

    def forget_channel(self, number: int) -> None:
        """The channel ended; its number may be reused."""
