"""Bytes in, frames out: the asyncio protocol under one AMQP connection.

Incoming bytes are cut into frames inside ``data_received`` and handed to the
connection's callback at once: no queue and no task per frame. Outgoing frames are
collected and written with one ``transport.write`` per event-loop pass, so a burst of
publishes and acks becomes one system call. The protocol also keeps the AMQP
heartbeat: it sends one when it has been quiet for half the interval, and declares the
connection dead after two intervals without hearing from the broker.

Both buffers are bounded, so a hostile or stuck peer cannot grow the client's memory:

* reading: a frame longer than the negotiated ``frame_max`` is refused as soon as its
  7-byte header arrives (:class:`~.errors.FrameTooLarge`, the connection is dropped and a
  line is logged); bytes are never kept beyond one frame plus one socket read;
* writing: :attr:`FrameProtocol.can_write` turns false while the transport has paused
  writing (its buffer is over the high-water mark) or more than ``OUT_HIGH`` bytes wait
  for this pass's write; publishers wait for it (:meth:`FrameProtocol.drain`). The small
  frames written without waiting (acks, heartbeats, closes) are bounded by the prefetch
  window; if the unsent bytes still reach ``WRITE_LIMIT`` the broker has stopped reading
  and the connection is dropped (:class:`~.errors.ConnectionLost`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from relaybus.drivers.rabbit.amqp import codec
from relaybus.drivers.rabbit.amqp.errors import ConnectionLost, FrameTooLarge

LOG = logging.getLogger(__name__)

FrameCallback = Callable[[int, int, bytes], None]
LostCallback = Callable[[BaseException], None]

#: bytes queued for this loop pass's write above which publishers wait (drain)
OUT_HIGH = 1 << 20
#: unsent bytes (queued here and in the transport) at which the connection is dropped
WRITE_LIMIT = 64 << 20
#: the frame size accepted before ``Connection.Tune`` (the AMQP minimum is 4096)
HANDSHAKE_FRAME_MAX = 131072


class FrameProtocol(asyncio.Protocol):
    """Frames one AMQP connection.

    Args:
        on_frame: called as ``on_frame(frame_type, channel, payload)`` for every frame.
        on_lost: called once, with the reason, when the transport is gone.

    Attributes:
        frame_max: the largest frame accepted, frame header and end octet included
            (the negotiated ``frame_max`` once tuned).
    """

    def __init__(self, on_frame: FrameCallback, on_lost: LostCallback) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._buffer = bytearray()
        self.frame_max = HANDSHAKE_FRAME_MAX
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._paused = False
        self._flush_scheduled = False
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._writable = asyncio.Event()
        self._writable.set()
        self._lost: BaseException | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        self._interval = 0.0
        self._last_read = self._last_write = self._loop.time()
        self.connected = self._loop.create_future()

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # not an isinstance check: uvloop's transports are not asyncio.Transport subclasses
        self._transport = cast(asyncio.Transport, transport)
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._last_read = self._loop.time()
        buffer = self._buffer
        buffer += data
        pos, size = 0, len(buffer)
        head = codec.FRAME_HEAD
        limit = self.frame_max - codec.FRAME_OVERHEAD
        try:
            while size - pos >= 7:
                frame_type, channel, length = head.unpack_from(buffer, pos)
                if length > limit:
                    raise FrameTooLarge(length + codec.FRAME_OVERHEAD, self.frame_max)
                end = pos + 7 + length
                if end >= size:
                    break
                if buffer[end] != codec.FRAME_END:
                    raise ConnectionLost("AMQP framing error: bad frame-end octet")
                payload = bytes(buffer[pos + 7:end])
                pos = end + 1
                self._on_frame(frame_type, channel, payload)
        except FrameTooLarge as exc:
            LOG.error("dropping the AMQP connection: %s", exc)
            pos = size  # nothing more is read from this connection
            self.abort(exc)
            return
        except Exception as exc:
            LOG.exception("AMQP connection failed while reading a frame")
            pos = size
            self.abort(exc if isinstance(exc, ConnectionLost) else ConnectionLost(str(exc)))
            return
        finally:
            del buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        self._transport = None
        if self._lost is None:
            self._lost = ConnectionLost(f"connection to the broker lost: {exc or 'closed'}")
        self._writable.set()
        if not self.connected.done():
            self.connected.set_exception(self._lost)
        self._out.clear()
        self._out_bytes = 0
        self._buffer = bytearray()
        self._on_lost(self._lost)

    def pause_writing(self) -> None:
        self._paused = True
        self._writable.clear()

    def resume_writing(self) -> None:
        self._paused = False
        if self._out_bytes < OUT_HIGH:
            self._writable.set()

    @property
    def unsent(self) -> int:
        """Bytes written and not yet taken by the socket (queued here and in the transport)."""
        transport = self._transport
        return self._out_bytes + (transport.get_write_buffer_size() if transport else 0)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet framed (at most one frame plus one read)."""
        return len(self._buffer)

    # -- writing -----------------------------------------------------------------

    @property
    def is_closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    @property
    def can_write(self) -> bool:
        """Whether a write goes out now (connected, and the socket buffer has room)."""
        return self._writable.is_set() and self._lost is None and self._transport is not None

    def write(self, data: bytes) -> None:
        """Queue bytes; everything queued in one loop pass goes out in one write."""
        if self._transport is None:
            raise self._lost or ConnectionLost("not connected")
        self._out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes >= OUT_HIGH:
            self._writable.clear()
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def write_now(self, data: bytes) -> None:
        """Queue bytes and flush at once (handshake and close, where order with EOF matters)."""
        self.write(data)
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        queued, self._out_bytes = self._out_bytes, 0
        transport = self._transport
        if out and transport is not None and not transport.is_closing():
            if self._paused and queued + transport.get_write_buffer_size() >= WRITE_LIMIT:
                LOG.error("dropping the AMQP connection: the broker has not read %d bytes",
                          queued + transport.get_write_buffer_size())
                self.abort(ConnectionLost(f"the broker stopped reading ({WRITE_LIMIT} bytes "
                                          "unsent)"))
                return
            transport.write(out[0] if len(out) == 1 else b"".join(out))
            self._last_write = self._loop.time()
        if not self._paused:
            self._writable.set()

    async def drain(self) -> None:
        """Wait while the socket's send buffer is full (the broker reads slowly or blocks).

        Raises:
            ConnectionLost: the connection ended (at once, or while waiting).
        """
        if not self._writable.is_set():
            await self._writable.wait()
        if self._lost is not None:
            raise self._lost

    def abort(self, reason: BaseException) -> None:
        """Drop the connection at once (no close handshake)."""
        if self._lost is None:
            self._lost = reason
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        """Flush what is queued, then close the socket."""
        self._flush()
        if self._transport is not None:
            self._transport.close()

    # -- heartbeats --------------------------------------------------------------

    def start_heartbeats(self, interval: float) -> None:
        """Send and expect heartbeats for a negotiated ``interval`` (0: none)."""
        self._interval = interval
        if interval > 0:
            self._heartbeat = self._loop.call_later(interval / 2, self._beat)

    def _beat(self) -> None:
        now = self._loop.time()
        if now - self._last_read > 2 * self._interval:
            LOG.warning("no data from the broker for %.0f s: the connection is dead",
                        now - self._last_read)
            self.abort(ConnectionLost(f"missed heartbeats for {now - self._last_read:.0f} s"))
            return
        if now - self._last_write >= self._interval / 2 and self._transport is not None:
            self.write(codec.HEARTBEAT)
        self._heartbeat = self._loop.call_later(self._interval / 2, self._beat)
