"""The nats driver's own behaviour on a real NATS server: what it puts on the wire, how it
keeps notifications, and what it does with bad input. The shared suite is in
test_nats_behaviour.py; connecting, credentials and TLS in test_nats_connect.py."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nats.js.errors
import pytest
from nats.aio.msg import Msg
from test_nats_support import (
    NAMING,
    URL,
    WAIT,
    PrivateNatsServer,
    delete_streams,
    raw_client,
    require_nats,
    unique_topic,
)

import relaybus
from relaybus import Target
from relaybus.drivers.nats import NatsDriver
from relaybus.drivers.nats.connection import round_trip
from relaybus.message import build_notification, build_reply, pack, unpack
from relaybus.testing.behaviour import Compute, Recorder
from relaybus.testing.buses import bus_factory
from relaybus.transport.base import IncomingNotification

pytestmark = pytest.mark.broker

MakeBus = Callable[..., Awaitable[relaybus.Bus]]


@pytest.fixture
async def topic(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A topic of this test only; its notification stream is deleted afterwards."""
    require_nats()
    name = unique_topic(request)
    yield name
    await delete_streams([name])


@pytest.fixture
async def make_bus() -> AsyncIterator[MakeBus]:
    async with bus_factory(URL) as make:
        yield make


@pytest.fixture
async def bus(make_bus: MakeBus) -> relaybus.Bus:
    return await make_bus()


def nats_driver(bus: relaybus.Bus) -> NatsDriver:
    assert isinstance(bus.driver, NatsDriver)
    return bus.driver


class RawServer:
    """A relaybus RPC server written on plain nats-py from docs/protocol/nats.md."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    async def on_msg(self, msg: Msg) -> None:
        message = unpack(msg.data)
        self.seen.append((msg.subject, msg.reply, message))
        self.changed.set()
        if "_msg_id" in message:
            reply = build_reply(message["_msg_id"], result=message["args"].get("value"))
            await msg._client.publish(message["_reply_q"], pack(reply))
        elif msg.reply:
            await msg._client.publish(msg.reply, b"")  # the cast confirmation

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.seen) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_rpc_subjects_and_bodies_on_the_wire(bus: relaybus.Bus, topic: str) -> None:
    peer = RawServer()
    subjects = [f"relaybus.openstack.rpc.{topic}", f"relaybus.openstack.rpc.{topic}.h%2E1",
                f"relaybus.openstack.fanout.{topic}", f"relaybus.nova.rpc.{topic}"]
    async with raw_client() as client:
        for subject in subjects:
            await client.subscribe(subject, cb=peer.on_msg)
        await round_trip(client)
        rpc = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        assert await rpc.call({"user": "u"}, "echo", value=1) == 1
        assert await rpc.prepare(server="h.1").call({}, "echo", value=2) == 2
        await rpc.prepare(fanout=True).cast({}, "echo", value=3)
        assert await rpc.prepare(exchange="nova").call({}, "echo", value=4) == 4
        await peer.wait_for(4)
    assert [s for s, _, _ in peer.seen] == subjects
    subject, reply, call = peer.seen[0]
    assert call["method"] == "echo" and call["args"] == {"value": 1}
    assert call["_context_user"] == "u"
    assert call["_reply_q"] == reply and reply is not None and reply.startswith("_INBOX.")
    assert reply.endswith("." + call["_msg_id"])
    _, cast_reply, cast = peer.seen[2]
    assert "_msg_id" not in cast and cast_reply is not None  # a confirmed cast


async def test_a_plain_nats_client_can_call_a_relaybus_server(bus: relaybus.Bus,
                                                              topic: str) -> None:
    async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute("s1")]), \
            raw_client() as client:
        inbox = client.new_inbox()
        replies = await client.subscribe(inbox)
        body = {"oslo.version": "2.0", "oslo.message":
                '{"method": "whoami", "args": {}, "_msg_id": "m1", "_reply_q": "' + inbox
                + '", "_timeout": null, "_unique_id": "u1"}'}
        await client.publish(f"relaybus.openstack.rpc.{topic}",
                             relaybus.message.encode_json(body))
        reply = unpack((await replies.next_msg(timeout=WAIT)).data)
    assert reply["result"] == "s1" and reply["ending"] is True and reply["_msg_id"] == "m1"


async def test_a_resent_notification_is_stored_once(bus: relaybus.Bus, topic: str) -> None:
    target = Target(topic=topic)
    message = build_notification("p", "e.x", "info", {"n": 1}, {})
    driver = nats_driver(bus)
    for _ in range(3):  # what the notifier's retry does: the same message_id again
        await driver.send_notification(target, message, "info")
    stream, _ = NAMING.stream(target)
    async with raw_client() as client:
        info = await client.jsm().stream_info(stream)
        stored = await client.jsm().get_msg(stream, 1)
    assert info.state.messages == 1
    assert stored.subject == f"relaybus.openstack.notify.{topic}.info"
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == message["message_id"]
    assert unpack(stored.data)["message_id"] == message["message_id"]



async def test_a_stream_deleted_under_a_sender_is_made_again(bus: relaybus.Bus,
                                                             topic: str) -> None:
    """The bus remembers the streams it made; one deleted since (by an operator) is made
    again by the next send, which is stored, not refused."""
    notifier = bus.notifier("p", topics=[topic])
    await notifier.info({}, "e.x", {"n": 1})
    await delete_streams([topic])
    await notifier.info({}, "e.x", {"n": 2})
    stream, _ = NAMING.stream(Target(topic=topic))
    async with raw_client() as client:
        stored = await client.jsm().get_msg(stream, 1)
    assert unpack(stored.data)["payload"] == {"n": 2}


async def test_a_server_without_jetstream_is_named_at_the_first_notification(
        tmp_path: Path) -> None:
    server = await PrivateNatsServer(tmp_path, jetstream=False).start()
    bus = await relaybus.connect(server.url)
    try:
        with pytest.raises(relaybus.ConnectionFailure, match="nats-server -js"):
            await bus.notifier("p", topics=["nojs"]).info({}, "e.x", {})
    finally:
        await bus.close()
        await server.stop()

async def test_stream_limits_come_from_the_options(make_bus: MakeBus, topic: str) -> None:
    bus = await make_bus(stream_max_age=60, stream_max_msgs=100, stream_max_bytes=1_000_000,
                         stream_storage="memory", duplicate_window=5)
    await bus.notifier("p", topics=[topic]).info({}, "e", {})
    async with raw_client() as client:
        config = (await client.jsm().stream_info(NAMING.stream(Target(topic=topic))[0])).config
    assert (config.max_age, config.max_msgs, config.max_bytes) == (60, 100, 1_000_000)
    assert config.storage == nats.js.api.StorageType.MEMORY
    assert config.duplicate_window == 5


async def test_each_pool_has_a_durable_consumer_per_priority(bus: relaybus.Bus,
                                                             topic: str) -> None:
    class Both:
        async def info(self, *args: Any) -> None: ...
        async def error(self, *args: Any) -> None: ...

    stream = NAMING.stream(Target(topic=topic))[0]
    async with bus.notification_listener([Target(topic=topic)], [Both()], pool="meter"), \
            raw_client() as client:
        names = sorted(c.name for c in await client.jsm().consumers_info(stream))
    assert names == ["meter_error", "meter_info"]


async def test_malformed_requests_are_logged_once_and_dropped(
        bus: relaybus.Bus, topic: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="relaybus.drivers.nats")
    async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
        async with raw_client() as client:
            subject = f"relaybus.openstack.rpc.{topic}"
            await client.publish(subject, b"\xff not json")
            await client.publish(subject, b'{"oslo.version": "2.0", "oslo.message": "{}"}')
            await client.publish(subject, b"[1, 2]")
            await round_trip(client)
        client_ = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        assert await client_.call({}, "echo", value="still serving") == "still serving"
    # counted each time, logged once per interval (a flood of them cannot flood the log)
    assert nats_driver(bus).intake.refused["malformed"] == 3
    dropped = [r for r in caplog.records if "(malformed)" in r.getMessage()]
    assert len(dropped) == 1 and "3 refused" not in dropped[0].getMessage()


async def test_a_malformed_call_is_refused_at_once(bus: relaybus.Bus, topic: str) -> None:
    async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]), \
            raw_client() as client:
        inbox = client.new_inbox()
        replies = await client.subscribe(inbox)
        call = relaybus.message.encode_json(  # no method
            {"args": {}, "_msg_id": "m1", "_reply_q": inbox, "_unique_id": "u"})
        await client.publish(f"relaybus.openstack.rpc.{topic}", call)
        reply = unpack((await replies.next_msg(timeout=WAIT)).data)
    failure = relaybus.message.decode_json(reply["failure"])
    assert reply["_msg_id"] == "m1" and reply["ending"] is True
    assert failure["class"] == "MalformedMessage" and "method" in failure["message"]


async def test_a_hostile_reply_subject_cannot_break_the_server(
        bus: relaybus.Bus, topic: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="relaybus.drivers.nats")
    async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
        async with raw_client() as client:
            subject = f"relaybus.openstack.rpc.{topic}"
            call = ('{"method": "echo", "args": {"value": 1}, "_msg_id": "m", '
                    '"_reply_q": "relaybus.>", "_unique_id": "u1"}')
            await client.publish(subject, call.encode())
            cast = '{"method": "echo", "args": {"value": 1}, "_unique_id": "u2"}'
            await client.publish(subject, cast.encode(), reply="confirm.*")
            await round_trip(client)
        rpc = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        assert await rpc.call({}, "echo", value="alive") == "alive"
        assert nats_driver(bus)._connection.client.is_connected
    messages = [r.getMessage() for r in caplog.records]
    assert any("(reply-address)" in m and "relaybus.>" in m for m in messages)
    assert nats_driver(bus).intake.refused["reply-address"] == 2


async def test_a_malformed_notification_is_terminated_not_redelivered(
        make_bus: MakeBus, topic: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="relaybus.drivers.nats")
    bus = await make_bus(ack_wait=1)
    recorder = Recorder()

    class Meter:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: dict[str, Any]) -> None:
            recorder.add(payload)

    target = Target(topic=topic)
    listener = bus.notification_listener([target], [Meter()])
    await listener.start()
    stream, _ = NAMING.stream(target)
    async with raw_client() as client:
        await client.jetstream().publish(f"relaybus.openstack.notify.{topic}.info", b"{bad")
        await bus.notifier("p", topics=[topic]).info({}, "e", {"n": 1})
        assert await recorder.wait_for(1) == [{"n": 1}]
        await listener.stop()
        await listener.wait()
        await round_trip(nats_driver(bus)._connection.client)
        async with asyncio.timeout(WAIT):  # the ack of the good one lands
            # the server's consumer state has no event to await: poll it under the deadline
            while (info := await client.jsm().consumer_info(stream, "info")).num_ack_pending:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    assert info.num_redelivered == 0 and info.delivered.stream_seq == 2
    dropped = [r for r in caplog.records if "malformed notification" in r.getMessage()]
    assert len(dropped) == 1


async def test_a_listener_that_dies_unsettled_gets_its_notification_redelivered(
        make_bus: MakeBus, topic: str) -> None:
    target = Target(topic=topic)
    first, second = await make_bus(ack_wait=1), await make_bus(ack_wait=1)
    taken: asyncio.Future[IncomingNotification] = asyncio.get_running_loop().create_future()

    async def take_and_die(incoming: IncomingNotification) -> None:
        if not taken.done():
            taken.set_result(incoming)  # never acknowledged

    dying = await first.driver.listen_for_notifications([(target, "info")], "p", take_and_die)
    await first.notifier("pub", topics=[topic]).info({}, "e", {"n": 1})
    lost = await asyncio.wait_for(taken, WAIT)
    await dying.stop()
    recorder = Recorder()

    class Meter:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: dict[str, Any]) -> None:
            recorder.add(metadata["message_id"])

    async with second.notification_listener([target], [Meter()], pool="p"):
        assert await recorder.wait_for(1) == [lost.notification.message_id]


async def test_core_notifications_reach_every_pool_and_keep_nothing(make_bus: MakeBus,
                                                                    topic: str) -> None:
    buses = [await make_bus(notifications="core") for _ in range(3)]
    notifier = buses[0].notifier("p", topics=[topic])
    await notifier.info({}, "before", {"n": -1})  # nobody listens: gone
    recorder = Recorder()

    class Meter:
        def __init__(self, name: str) -> None:
            self.name = name

        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: dict[str, Any]) -> None:
            recorder.add((self.name[0], payload["n"]))

    listeners = [buses[0].notification_listener([Target(topic=topic)], [Meter("a1")], pool="a"),
                 buses[1].notification_listener([Target(topic=topic)], [Meter("a2")], pool="a"),
                 buses[2].notification_listener([Target(topic=topic)], [Meter("b1")], pool="b")]
    for listener in listeners:
        await listener.start()
    for n in range(6):
        await notifier.info({}, "e", {"n": n})
    items = await recorder.wait_for(12)
    for listener in listeners:
        await listener.stop()
    assert sorted(n for pool, n in items if pool == "a") == list(range(6))
    assert sorted(n for pool, n in items if pool == "b") == list(range(6))
    async with raw_client() as client:
        with pytest.raises(nats.js.errors.NotFoundError):
            await client.jsm().stream_info(NAMING.stream(Target(topic=topic))[0])


async def test_unconfirmed_casts_are_blind(make_bus: MakeBus, topic: str) -> None:
    bus = await make_bus(confirm_casts=False)
    client = bus.rpc_client(Target(topic=topic))
    assert await client.cast({}, "record", value=1) is None  # nobody listens: no error
    recorder = Recorder()
    async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute("s1", recorder)]):
        await client.cast({}, "record", value=2)
        assert await recorder.wait_for(1) == [("s1", 2)]


async def test_a_cast_nobody_confirms_times_out(make_bus: MakeBus, topic: str) -> None:
    bus = await make_bus(send_timeout=0.3)
    async with raw_client() as client:
        await client.subscribe(f"relaybus.openstack.rpc.{topic}")  # listens, never confirms
        await round_trip(client)
        with pytest.raises(relaybus.MessagingTimeout, match="confirmed"):
            await bus.rpc_client(Target(topic=topic)).cast({}, "record", value=1)


async def test_the_servers_max_payload_is_a_limit_too(bus: relaybus.Bus, topic: str) -> None:
    limit = nats_driver(bus)._connection.client.max_payload
    assert limit < bus.driver.max_message_size
    async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
        client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        with pytest.raises(relaybus.MessageTooLarge) as info:
            await client.call({}, "echo", value="x" * limit)
        assert info.value.limit == limit
        with pytest.raises(relaybus.MessageTooLarge):
            await bus.notifier("p", topics=[topic]).info({}, "e", {"x": "x" * limit})
        assert await client.call({}, "echo", value="small") == "small"


async def test_close_stops_everything_and_refuses_sends(make_bus: MakeBus, topic: str) -> None:
    bus = await make_bus()

    def ours() -> set[str]:
        return {t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(
            "relaybus[nats]")}

    class Meter:
        async def info(self, *args: Any) -> None: ...

    await bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]).start()
    await bus.notification_listener([Target(topic=topic)], [Meter()]).start()
    await bus.rpc_client(Target(topic=topic), timeout=WAIT).call({}, "echo", value=1)
    names = ours()
    assert any(n.startswith("relaybus[nats].server[") for n in names)
    assert any(n.startswith("relaybus[nats].listener[") for n in names)
    assert any(n.startswith("relaybus[nats].replies[") for n in names)
    await bus.close()
    await bus.close()
    assert ours() == set()
    with pytest.raises(relaybus.TransportError):
        await bus.driver.send(Target(topic=topic), relaybus.message.Request(
            method="echo", args={}, context={}), wait_for_reply=False)


async def test_tap_sees_requests_and_notifications_without_taking_them(
        bus: relaybus.Bus, topic: str) -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []
    got_all = asyncio.Event()

    async def watch(exchange: str, key: str, message: dict[str, Any]) -> None:
        seen.append((exchange, key, message))
        if len(seen) == 4:
            got_all.set()

    recorder = Recorder()

    class Meter:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: dict[str, Any]) -> None:
            recorder.add(event_type)

    server_name = "h.1"
    async with bus.rpc_server(Target(topic=topic, server=server_name), [Compute()]), \
            bus.notification_listener([Target(topic=topic)], [Meter()]):
        tap = await bus.driver.tap(Target(topic=topic), watch)
        client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        assert await client.call({}, "echo", value=1) == 1
        assert await client.prepare(server=server_name).call({}, "echo", value=2) == 2
        await client.prepare(fanout=True).cast({}, "echo", value=3)
        await bus.notifier("p", topics=[topic]).info({}, "tapped", {})
        await asyncio.wait_for(got_all.wait(), WAIT)
        assert await recorder.wait_for(1) == ["tapped"]
        await tap.stop()
    assert [(exchange, key) for exchange, key, _ in seen] == [
        ("openstack", topic), ("openstack", f"{topic}.{server_name}"),
        (f"{topic}_fanout", topic), ("openstack", f"{topic}.info")]
    assert [m.get("method") for _, _, m in seen[:3]] == ["echo", "echo", "echo"]
    assert seen[3][2]["event_type"] == "tapped"


async def test_cancelled_calls_and_casts_leave_nothing_pending(bus: relaybus.Bus,
                                                               topic: str) -> None:
    driver = nats_driver(bus)
    async with raw_client() as client:
        taker = await client.subscribe(f"relaybus.openstack.rpc.{topic}")  # never answers
        await round_trip(client)
        rpc = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        pending = [asyncio.ensure_future(rpc.call({}, "echo", value=1)),
                   asyncio.ensure_future(rpc.cast({}, "echo", value=2))]
        for _ in pending:  # both were sent, so both wait
            await taker.next_msg(timeout=WAIT)
        assert len(driver._replies) == 2 and len(driver._casts) == 1
        for task in pending:
            task.cancel()
        await asyncio.wait(pending)
    assert len(driver._replies) == 0 and not driver._casts


async def test_a_slow_listener_is_not_taken_for_a_lost_pull_request(
        make_bus: MakeBus, topic: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="relaybus.drivers.nats")
    bus = await make_bus(idle_heartbeat=0.2)
    recorder = Recorder()

    class Slow:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: dict[str, Any]) -> None:
            await asyncio.sleep(0.6)  # three heartbeats' time, while the next one waits
            recorder.add(payload["n"])

    async with bus.notification_listener([Target(topic=topic)], [Slow()], max_concurrency=1):
        notifier = bus.notifier("p", topics=[topic])
        for n in range(3):
            await notifier.info({}, "e", {"n": n})
        assert sorted(await recorder.wait_for(3)) == [0, 1, 2]
    assert not [r for r in caplog.records if "no heartbeat" in r.getMessage()]



class _InfoSink:
    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict[str, Any]) -> None:
        """Take info notifications and drop them."""


@pytest.mark.parametrize("start", ["rpc_server", "listener", "tap"])
async def test_listening_returns_only_once_the_server_has_the_subscriptions(
        tmp_path: Path, start: str) -> None:
    """A call from another connection right after start() must never meet "no
    responders", so the round trip that ends start() must follow the SUBs on the wire.
    nats-py's flush() alone writes its PING ahead of SUBs still in its buffer; in CI a
    call then failed about once in 25 starts. The server's trace shows the order."""
    server = await PrivateNatsServer(tmp_path, "-DV", jetstream=False).start()
    bus = await relaybus.connect(server.url, notifications="core")
    try:
        target = Target(topic="ordered", server="s1")
        if start == "rpc_server":
            await bus.rpc_server(target, [Compute()]).start()
        elif start == "listener":
            await bus.notification_listener([Target(topic="ordered")], [_InfoSink()],
                                            pool="p").start()
        else:
            await bus.tap(target, lambda *_: asyncio.sleep(0))
        sent = [line for line in server.log.read_text().splitlines()
                if "<<- [SUB " in line or "<<- [PING]" in line]
        last_sub = max(i for i, line in enumerate(sent) if "[SUB " in line)
        assert any("[PING]" in line for line in sent[last_sub:]), sent
    finally:
        await bus.close()
        await server.stop()


async def test_a_requester_cannot_make_a_server_purge_or_delete_a_stream(
        bus: relaybus.Bus, topic: str) -> None:
    """Issue 12: replies and cast confirmations named JetStream's API as their address and
    the server sent them with its own credentials, purging or deleting stored
    notifications. Now such a request is refused and the stream keeps what it holds."""
    notifications = Target(topic=f"{topic}_kept")
    await bus.notifier("p", topics=[notifications.topic]).info({}, "e.kept", {"n": 1})
    stream, _ = NAMING.stream(notifications)
    durable = f"{topic}-victim"
    recorder = Recorder()
    async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute("s1", recorder)]), \
            raw_client() as client:
        jsm = client.jsm()
        await jsm.add_consumer(stream, durable_name=durable)
        attacks = [f"$JS.API.STREAM.PURGE.{stream}", f"$JS.API.STREAM.DELETE.{stream}",
                   f"$JS.API.CONSUMER.DELETE.{stream}.{durable}"]
        subject = f"relaybus.openstack.rpc.{topic}"
        for address in attacks:
            call = pack(relaybus.message.build_request(
                "record", {"value": "call"}, {}, msg_id="d" * 32, reply_q=address))
            await client.publish(subject, call)
            cast = pack(relaybus.message.build_request("record", {"value": "cast"}, {}))
            await client.publish(subject, cast, reply=address)
        await round_trip(client)
        rpc = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        assert await rpc.call({}, "echo", value="alive") == "alive"
        info = await jsm.stream_info(stream)
        consumers = [c.name for c in await jsm.consumers_info(stream)]
    assert info.state.messages == 1
    assert durable in consumers
    assert recorder.items == []
    assert nats_driver(bus).intake.refused["reply-address"] == 2 * len(attacks)


class _TurnProbe:
    """Counts the event loop's turns (a callback that re-arms itself), while running."""

    def __init__(self) -> None:
        self.turn = 0
        self._on = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        if self._on:
            self.turn += 1
            asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._on = False


async def test_a_burst_of_calls_gets_its_replies_in_batches(make_bus: MakeBus,
                                                            topic: str) -> None:
    """A server handed a burst of calls in one read lets nats-py write its replies every
    WRITE_BATCH of them, instead of all at once after the last call (.pacing)."""
    from relaybus.drivers.nats.pacing import WRITE_BATCH

    probe: _TurnProbe | None = None
    turns: list[int] = []  # the loop turn each call was handled in

    class Echo:
        async def echo(self, ctxt: dict[str, Any], value: int) -> int:
            if probe is not None:
                turns.append(probe.turn)
            return value

    server_bus, client_bus = await make_bus(), await make_bus()
    burst = 4 * WRITE_BATCH
    async with server_bus.rpc_server(Target(topic=topic, server="s1"), [Echo()],
                                     max_concurrency=4 * burst):
        client = client_bus.rpc_client(Target(topic=topic), timeout=WAIT)
        assert await client.call({}, "echo", value=-1) == -1  # the reply inbox is ready
        probe = _TurnProbe()
        try:
            # started in one turn: nats-py sends them in one write, and the server's
            # subscription has most of them in its buffer at once
            results = await asyncio.gather(*(client.call({}, "echo", value=i)
                                             for i in range(burst)))
        finally:
            probe.stop()
    assert results == list(range(burst))
    per_turn = collections.Counter(turns)
    assert max(per_turn.values()) <= WRITE_BATCH, per_turn
