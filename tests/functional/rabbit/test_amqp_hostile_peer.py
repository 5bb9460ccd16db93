"""relaybus's AMQP client against a broker that misbehaves (a fake one, on loopback).

The fake (:mod:`fake_amqp_broker`) is a real TCP peer speaking AMQP through pamqp: it lets
the client in, then floods oversized frames or garbage, stops reading, blocks publishing,
pauses a channel, throws deliveries at a failing callback, or never answers a close. None
of it may grow the client's memory, hang it, or take down more than it must.
"""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest
from fake_amqp_broker import FRAME_MAX, FakeBroker
from pamqp import commands

import relaybus
from relaybus import Target
from relaybus.drivers.rabbit.amqp import (
    Connection,
    ConnectionLost,
    ConnectParams,
    Delivery,
    FrameTooLarge,
    codec,
)
from relaybus.drivers.rabbit.amqp.protocol import OUT_HIGH
from relaybus.drivers.rabbit.errors import translate

PROPERTIES = codec.message_properties()


async def open_connection(broker: FakeBroker) -> Connection:
    return await Connection.open(ConnectParams(host="127.0.0.1", port=broker.port,
                                               username="guest", password="guest",
                                               heartbeat=0))


def frame_head(frame_type: int, channel: int, size: int) -> bytes:
    return struct.pack(">BHI", frame_type, channel, size)


# -- reading: oversized frames and garbage ---------------------------------------------------


async def test_hostile_frame_at_frame_max_passes_and_one_byte_more_is_refused(
        caplog: pytest.LogCaptureFixture) -> None:
    async with FakeBroker() as broker:
        connection = await open_connection(broker)
        peer = await broker.peer()
        largest = FRAME_MAX - codec.FRAME_OVERHEAD
        # a body frame of exactly frame_max on a channel nobody opened: ignored
        peer.send_raw(frame_head(codec.FRAME_BODY, 7, largest) + bytes(largest)
                      + codec.FRAME_END_BYTE)
        channel = await connection.channel()  # a round trip: the big frame was read
        assert not connection.is_closed and connection.protocol.buffered == 0
        flood = asyncio.ensure_future(peer.flood(
            frame_head(codec.FRAME_BODY, channel.number, largest + 1), 65536, 64 << 20))
        reason = await connection.closed
        assert isinstance(reason, FrameTooLarge)
        assert (reason.size, reason.frame_max) == (FRAME_MAX + 1, FRAME_MAX)
        assert isinstance(translate(reason), relaybus.ConnectionFailure)
        assert "frame_max" in str(translate(reason))
        assert connection.protocol.buffered == 0
        assert await flood == "reset"  # the client hung up instead of reading 64 MiB
        assert isinstance(channel.closed.result(), FrameTooLarge)
    assert any("dropping the AMQP connection" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records)


async def test_hostile_gigabyte_frame_header_is_refused_before_its_payload() -> None:
    async with FakeBroker() as broker:
        connection = await open_connection(broker)
        peer = await broker.peer()
        flood = asyncio.ensure_future(peer.flood(frame_head(codec.FRAME_METHOD, 0, 1 << 30),
                                                 65536, 64 << 20))
        reason = await connection.closed
        assert isinstance(reason, FrameTooLarge) and reason.size == (1 << 30) + 8
        assert await flood == "reset"
        assert connection.protocol.buffered == 0


@pytest.mark.parametrize(("garbage", "words"), [
    (frame_head(codec.FRAME_METHOD, 0, 4) + b"abcdX", "frame-end"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "frame_max"),
    (frame_head(codec.FRAME_METHOD, 0, 4) + b"\xff\xff\xff\xff\xce", "unknown AMQP method"),
], ids=["bad-frame-end", "http", "unknown-method"])
async def test_hostile_garbage_ends_the_connection_with_a_framing_error(
        garbage: bytes, words: str) -> None:
    async with FakeBroker() as broker:
        connection = await open_connection(broker)
        peer = await broker.peer()
        peer.send_raw(garbage)
        reason = await connection.closed
        assert isinstance(reason, ConnectionLost)
        assert words in str(reason)
        assert connection.protocol.buffered == 0
        await peer.ended


# -- writing: a broker that stops reading ------------------------------------------------------


async def test_hostile_broker_that_stops_reading_bounds_the_write_buffer() -> None:
    async with FakeBroker() as broker:
        connection = await open_connection(broker)
        peer = await broker.peer()
        channel = await connection.channel()
        peer.reading.clear()
        body = bytes(16384)
        published = 0
        while channel.writable and published < 4096:  # 64 MiB at most, if nothing stops it
            channel.publish("", "nowhere", body, PROPERTIES)
            published += 1
            await asyncio.sleep(0)  # let the writes go out, as publishers' awaits do
        assert not channel.writable
        assert published < 4096
        assert connection.protocol.unsent < OUT_HIGH + 256 * 1024
        waiter = asyncio.ensure_future(channel.wait_writable())
        await asyncio.sleep(0)
        assert not waiter.done()
        peer.reading.set()
        await waiter
        await peer.received("Basic.Publish", published)
        assert not connection.is_closed
        await connection.close()


# -- back-pressure from the broker ---------------------------------------------------------


async def test_hostile_connection_blocked_holds_publishers_until_unblocked() -> None:
    async with FakeBroker() as broker:
        connection = await open_connection(broker)
        peer = await broker.peer()
        peer.send_method(0, commands.Connection.Blocked(reason="low on memory"))
        channel = await connection.channel()  # answered after Blocked: it was read first
        assert not channel.writable
        waiter = asyncio.ensure_future(channel.wait_writable())
        await asyncio.sleep(0)
        assert not waiter.done()
        peer.send_method(0, commands.Connection.Unblocked())
        await waiter
        assert channel.writable
        await connection.close()


async def test_hostile_channel_flow_pauses_the_channel_and_is_answered() -> None:
    async with FakeBroker() as broker:
        connection = await open_connection(broker)
        peer = await broker.peer()
        channel = await connection.channel()
        other = await connection.channel()
        peer.send_method(channel.number, commands.Channel.Flow(active=False))
        await peer.received("Channel.FlowOk")
        assert [(c, f.active) for c, f in peer.frames if f.name == "Channel.FlowOk"] == \
            [(channel.number, False)]
        assert not channel.writable and other.writable
        waiter = asyncio.ensure_future(channel.wait_writable())
        await asyncio.sleep(0)
        assert not waiter.done()
        peer.send_method(channel.number, commands.Channel.Flow(active=True))
        await waiter
        await peer.received("Channel.FlowOk", 2)
        await connection.close()


async def test_hostile_blocked_broker_turns_a_call_into_messaging_timeout() -> None:
    async with FakeBroker() as broker:
        bus = await relaybus.connect(broker.url, close_timeout=1)
        try:
            peer = await broker.peer()
            peer.send_method(0, commands.Connection.Blocked(reason="disk alarm"))
            client = bus.rpc_client(Target(topic="hostile_blocked_call"), timeout=0.3)
            with pytest.raises(relaybus.MessagingTimeout):
                await client.call({}, "ping")
            assert ("Basic.Publish" not in [name for _, name in peer.methods])
            peer.send_method(0, commands.Connection.Unblocked())
            await client.cast({}, "ping")  # the fake confirms it
            await peer.received("Basic.Publish")
        finally:
            await bus.close()


# -- a failing delivery callback ---------------------------------------------------------------


async def test_hostile_failing_callback_is_contained_to_its_delivery(
        caplog: pytest.LogCaptureFixture) -> None:
    async with FakeBroker() as broker:
        connection = await open_connection(broker)
        peer = await broker.peer()
        channel = await connection.channel()
        taken: list[bytes] = []

        def failing(delivery: Delivery) -> None:
            raise RuntimeError(f"cannot take {delivery.body!r}")

        await channel.basic_consume("q-bad", "bad-consumer", failing)
        await channel.basic_consume("q-good", "good-consumer", lambda d: taken.append(d.body))
        await channel.basic_consume("q-noack", "noack-consumer", failing, no_ack=True)
        peer.deliver(channel.number, "bad-consumer", 1, b"one")
        peer.deliver(channel.number, "good-consumer", 2, b"two")
        peer.deliver(channel.number, "bad-consumer", 3, b"three")
        peer.deliver(channel.number, "noack-consumer", 4, b"four")
        await channel.qos(1)  # a round trip: every delivery above was handled
        await peer.received("Basic.Nack", 2)
        assert taken == [b"two"]
        assert not connection.is_closed and not channel.is_closed
        nacks = [(f.delivery_tag, f.requeue) for _, f in peer.frames if f.name == "Basic.Nack"]
        assert nacks == [(1, False), (3, False)]  # tag 4 is no_ack: nothing to settle
        failures = [r for r in caplog.records if "failed to take delivery" in r.getMessage()]
        assert len(failures) == 3
        assert "bad-consumer" in failures[0].getMessage() and failures[0].exc_info
        assert not failures[1].exc_info  # the traceback once per consumer
        assert "noack-consumer" in failures[2].getMessage() and failures[2].exc_info
        await connection.close()


# -- closing -------------------------------------------------------------------------------------


async def test_hostile_broker_never_answering_close_is_dropped_after_the_timeout() -> None:
    async with FakeBroker() as broker:
        connection = await open_connection(broker)
        peer = await broker.peer()
        peer.answer_close = False
        await connection.close(timeout=0.2)
        assert isinstance(connection.closed.result(), relaybus.drivers.rabbit.amqp
                          .ConnectionClosed)
        await peer.received("Connection.Close")
        await peer.ended


async def test_hostile_bus_close_returns_when_the_broker_stops_reading() -> None:
    async with FakeBroker() as broker:
        bus = await relaybus.connect(broker.url, close_timeout=0.5)
        peer = await broker.peer()
        client = bus.rpc_client(Target(topic="hostile_close_unread"), timeout=0.2)
        with pytest.raises(relaybus.MessagingTimeout):
            await client.call({}, "ping")  # nobody replies; the reply queue now exists
        peer.reading.clear()  # what RabbitMQ does to a blocked connection
        peer.answer_close = False
        await bus.close()
        peer.reading.set()  # reading again, it finds the socket gone (else this hangs)
        await peer.ended


async def test_hostile_bus_close_deletes_its_reply_queue() -> None:
    async with FakeBroker() as broker:
        bus = await relaybus.connect(broker.url, close_timeout=2)
        peer = await broker.peer()
        client = bus.rpc_client(Target(topic="hostile_close_delete"), timeout=0.2)
        with pytest.raises(relaybus.MessagingTimeout):
            await client.call({}, "ping")
        declared = [f.queue for _, f in peer.frames if f.name == "Queue.Declare"
                    and f.queue.startswith("reply_")]
        await bus.close()
        deleted = [f.queue for _, f in peer.frames if f.name == "Queue.Delete"]
        assert declared and deleted == declared
        await peer.ended
