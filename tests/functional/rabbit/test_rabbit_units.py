"""The rabbit driver's pieces on their own, without a broker: frames, acks, confirms."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pamqp import commands
from pamqp import frame as pamqp_frame

import relaybus
from relaybus.drivers.rabbit.acks import AckBatcher
from relaybus.drivers.rabbit.amqp import codec
from relaybus.drivers.rabbit.publisher import CONFIRM, Publisher
from relaybus.transport.tasks import TaskOwner


def _frames(data: bytes) -> list[Any]:
    frames, offset = [], 0
    while offset < len(data):
        used, _, value = pamqp_frame.unmarshal(data[offset:])
        frames.append(value)
        offset += used
    return frames


def test_publish_frames_decode_with_pamqp_as_oslos_properties() -> None:
    body = b"x" * 300_000
    data = codec.pack_publish(3, "openstack", "compute.host1", body,
                              codec.message_properties(expiration="30000"),
                              mandatory=True, frame_max=131072)
    method, header, *bodies = _frames(data)
    assert isinstance(method, commands.Basic.Publish)
    assert (method.exchange, method.routing_key, method.mandatory) == \
        ("openstack", "compute.host1", True)
    props = header.properties
    assert (props.content_type, props.content_encoding, props.headers, props.delivery_mode,
            props.priority, props.expiration) == ("application/json", "utf-8", {}, 2, 0, "30000")
    assert header.body_size == len(body)
    assert len(bodies) == 3 and b"".join(b.value for b in bodies) == body
    assert max(len(b.value) for b in bodies) <= 131072 - 8


def test_hand_parsed_deliver_and_ack_match_pamqp() -> None:
    deliver = codec.pack_method(1, commands.Basic.Deliver(
        consumer_tag="relaybus.q.1", delivery_tag=2**40, redelivered=True,
        exchange="openstack", routing_key="topic.s1"))
    assert codec.unpack_deliver(deliver[7:-1]) == \
        ("relaybus.q.1", 2**40, True, "openstack", "topic.s1")
    ack = codec.pack_ack(1, 77, True)
    (parsed,) = _frames(ack)
    assert isinstance(parsed, commands.Basic.Ack) and (parsed.delivery_tag, parsed.multiple) == \
        (77, True)
    (nack,) = _frames(codec.pack_nack(1, 5, multiple=False, requeue=True))
    assert (nack.delivery_tag, nack.multiple, nack.requeue) == (5, False, True)


class FakeChannel:
    """Records acknowledgements instead of sending them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, bool]] = []
        self.is_closed = False
        self.writable = True  # never back-pressured
        self.closed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def ack(self, tag: int, *, multiple: bool = False) -> None:
        self.sent.append(("ack", tag, multiple))

    def nack(self, tag: int, *, requeue: bool, multiple: bool = False) -> None:
        self.sent.append(("nack", tag, requeue))

    def publish(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()  # never confirmed

    async def close(self) -> None:
        self.is_closed = True


async def test_acks_in_order_go_out_as_one_multiple_ack() -> None:
    channel = FakeChannel()
    acks = AckBatcher(channel)  # type: ignore[arg-type]
    for tag in range(1, 6):
        acks.received(tag)
    for tag in range(1, 6):
        assert acks.ack(tag)
    assert not acks.ack(3)  # settled once only
    acks.flush()
    assert channel.sent == [("ack", 5, True)]
    assert len(acks) == 0


async def test_acks_behind_a_slow_delivery_go_out_one_by_one() -> None:
    channel = FakeChannel()
    acks = AckBatcher(channel)  # type: ignore[arg-type]
    for tag in range(1, 6):
        acks.received(tag)
    acks.ack(1)
    acks.reject(2, requeue=True)
    acks.ack(4)  # 3 is still being handled
    acks.ack(5)
    acks.flush()
    assert channel.sent == [("nack", 2, True), ("ack", 1, True), ("ack", 4, False),
                            ("ack", 5, False)]
    settled = asyncio.ensure_future(acks.settled())
    await asyncio.sleep(0)
    assert not settled.done()
    acks.ack(3)
    acks.flush()
    assert channel.sent[-1] == ("ack", 3, True)  # 4 and 5 went out already
    await asyncio.wait_for(settled, 1)


async def test_acks_flush_by_themselves_once_per_loop_pass() -> None:
    channel = FakeChannel()
    acks = AckBatcher(channel)  # type: ignore[arg-type]
    acks.received(1)
    acks.received(2)
    acks.ack(1)
    acks.ack(2)
    assert channel.sent == []
    await asyncio.sleep(0)
    assert channel.sent == [("ack", 2, True)]


class FakeConnector:
    generation = 1
    current = None

    def __init__(self) -> None:
        self.tasks = TaskOwner("relaybus[test]")


async def test_a_confirm_that_never_comes_ends_in_connection_failure() -> None:
    publisher = Publisher(FakeConnector(), confirms=True,  # type: ignore[arg-type]
                          on_returned_call=lambda returned: None)
    publisher._channels[CONFIRM] = FakeChannel()  # type: ignore[assignment]
    publisher._generation = FakeConnector.generation
    started = asyncio.get_running_loop().time()
    with pytest.raises(relaybus.ConnectionFailure, match="did not confirm"):
        await publisher.publish_confirmed("openstack", "t", b"{}", b"", mandatory=False,
                                          unique_id=None, target=None, timeout=0.2)
    assert 0.2 <= asyncio.get_running_loop().time() - started < 1.5
    await publisher.close()


class ConfirmingChannel(FakeChannel):
    """A confirm channel whose broker nacks (``nack=True``) or acks every publish."""

    def __init__(self, number: int, *, nack: bool) -> None:
        super().__init__()
        self.number = number
        self.nack_all = nack
        self.published: list[bytes] = []
        self.on_return: Any = None

    async def confirm_select(self) -> None:
        pass

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: bytes, *,
                mandatory: bool = False) -> asyncio.Future[None]:
        from relaybus.drivers.rabbit.amqp import PublishNacked
        self.published.append(body)
        future = asyncio.get_running_loop().create_future()
        if self.nack_all:
            future.set_exception(PublishNacked("the broker refused the message (basic.nack)"))
        else:
            future.set_result(None)
        return future


class ChannelFactory:
    """A connection handing out confirm channels: the first ``nacking`` ones nack."""

    writable = True

    def __init__(self, nacking: int) -> None:
        self.nacking = nacking
        self.opened: list[ConfirmingChannel] = []

    async def channel(self) -> ConfirmingChannel:
        channel = ConfirmingChannel(len(self.opened) + 1,
                                    nack=len(self.opened) < self.nacking)
        self.opened.append(channel)
        return channel


class ConnectedConnector:
    generation = 1

    def __init__(self, connection: ChannelFactory) -> None:
        self.current = connection
        self.tasks = TaskOwner("relaybus[test]")

    async def connection(self, timeout: float | None) -> ChannelFactory:
        return self.current


async def test_a_nacked_message_is_sent_again_on_a_new_channel() -> None:
    # RabbitMQ 3.10 nacks everything on a confirm channel opened while a quorum queue's
    # leader was down; a new channel works at once. The stuck channel must be dropped.
    connection = ChannelFactory(nacking=1)
    publisher = Publisher(ConnectedConnector(connection),  # type: ignore[arg-type]
                          confirms=True, on_returned_call=lambda returned: None)
    await publisher.publish_confirmed("openstack", "t", b"one", b"", mandatory=False,
                                      unique_id=None, target=None, timeout=2)
    first, second = connection.opened
    assert first.published == [b"one"] and second.published == [b"one"]
    await asyncio.sleep(0)
    assert first.is_closed and not second.is_closed
    # later sends use the new channel, and only it
    await publisher.publish_confirmed("openstack", "t", b"two", b"", mandatory=False,
                                      unique_id=None, target=None, timeout=2)
    assert len(connection.opened) == 2 and second.published == [b"one", b"two"]
    await publisher.close()


async def test_nacks_until_the_send_timeout_end_in_transport_error() -> None:
    connection = ChannelFactory(nacking=10**6)
    publisher = Publisher(ConnectedConnector(connection),  # type: ignore[arg-type]
                          confirms=True, on_returned_call=lambda returned: None)
    started = asyncio.get_running_loop().time()
    with pytest.raises(relaybus.TransportError, match=r"basic\.nack") as caught:
        await publisher.publish_confirmed("openstack", "t", b"x", b"", mandatory=False,
                                          unique_id=None, target=None, timeout=0.5)
    assert not isinstance(caught.value, relaybus.ConnectionFailure)
    assert 0.5 <= asyncio.get_running_loop().time() - started < 1.5
    # each attempt on a channel of its own, with pauses in between: no spinning
    assert 3 <= len(connection.opened) <= 12
    assert all(len(channel.published) == 1 for channel in connection.opened)
    await publisher.close()
