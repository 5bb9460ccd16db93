"""The rabbit driver's own behaviour on a real broker: connecting, options, topology,
confirms, prefetch, acknowledgements and reconnection (the shared behaviour suite covers
the rest, in tests/functional/test_rabbit_behaviour.py)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiormq
import pytest
from rabbit_support import (
    VECTORS,
    WAIT,
    Tap,
    close_connection,
    is_named,
    message_of,
    parse_body,
    rabbitmq_json,
)

import relaybus
from relaybus import Target
from relaybus.drivers.rabbit import RabbitDriver

pytestmark = pytest.mark.broker

MakeBus = Callable[..., Awaitable[relaybus.Bus]]


class Echo:
    def __init__(self, name: str = "server") -> None:
        self.name = name
        self.casts: list[Any] = []
        self.cast_seen = asyncio.Event()
        self.sleeping = asyncio.Event()

    async def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    async def whoami(self, ctxt: Any) -> str:
        return self.name

    async def record(self, ctxt: Any, value: Any) -> None:
        self.casts.append(value)
        self.cast_seen.set()

    async def sleep(self, ctxt: Any, seconds: float) -> str:
        self.sleeping.set()
        await asyncio.sleep(seconds)
        return "slept"


def driver_of(bus: relaybus.Bus) -> RabbitDriver:
    assert isinstance(bus.driver, RabbitDriver)
    return bus.driver


# -- connecting ---------------------------------------------------------------------------

async def test_wrong_password_is_an_authentication_failure_not_a_retry_loop(
        rabbit_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(relaybus.AuthenticationFailure, match="credentials"):
        await relaybus.connect("rabbit://guest:wrong@127.0.0.1:5672/")
    assert time.monotonic() - started < 5


async def test_an_amqplain_login_is_what_the_broker_sees(rabbit_url: str) -> None:
    async with await relaybus.connect(rabbit_url, login_method="AMQPLAIN") as bus:
        name, topic = driver_of(bus).connection_name, f"amqplain_{time.monotonic_ns()}"
        async with bus.rpc_server(Target(topic=topic, server="s"), [Echo()]):
            assert await bus.rpc_client(Target(topic=topic)).call({}, "echo", value=1) == 1
        mechanisms = [row["auth_mechanism"] for row in rabbitmq_json(
            "list_connections", "auth_mechanism", "client_properties")
            if is_named(row, name)]
        assert mechanisms == ["AMQPLAIN"]
    with pytest.raises(relaybus.AuthenticationFailure, match="credentials"):
        await relaybus.connect("rabbit://guest:wrong@127.0.0.1:5672/",
                               login_method="AMQPLAIN")


async def test_missing_vhost_is_an_authentication_failure(rabbit_url: str) -> None:
    with pytest.raises(relaybus.AuthenticationFailure, match="virtual host"):
        await relaybus.connect("rabbit://guest:guest@127.0.0.1:5672/no-such-vhost-here")


async def test_unreachable_broker_is_a_connection_failure(rabbit_url: str) -> None:
    with pytest.raises(relaybus.ConnectionFailure) as info:
        await relaybus.connect("rabbit://guest:guest@127.0.0.1:1/", connect_timeout=2)
    assert isinstance(info.value, ConnectionError)
    assert not isinstance(info.value, relaybus.AuthenticationFailure)


async def test_failover_to_the_next_host_in_order(make_bus: MakeBus, topic: str) -> None:
    bus = await make_bus("rabbit://guest:guest@127.0.0.1:1,127.0.0.1:5672/")
    async with bus.rpc_server(Target(topic=topic, server="s1"), [Echo()]):
        client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        assert await client.call({}, "echo", value="via the second host") == \
            "via the second host"


async def test_tls_to_a_plain_port_fails_cleanly(rabbit_url: str) -> None:
    with pytest.raises(relaybus.ConnectionFailure):
        await relaybus.connect("rabbit://guest:guest@127.0.0.1:5672/?ssl=1", connect_timeout=3)


@pytest.fixture
async def tls_proxy(tls_files: dict[str, Path]) -> AsyncIterator[int]:
    """A TLS endpoint (client certificate required) in front of the broker's plain port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files["server_cert"], tls_files["server_key"])
    context.load_verify_locations(tls_files["ca"])
    context.verify_mode = ssl.CERT_REQUIRED
    pipes: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5672)
        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            pipes.add(asyncio.ensure_future(task))

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1]
    server.close()
    for task in pipes:
        task.cancel()
    await asyncio.gather(*pipes, return_exceptions=True)
    await server.wait_closed()


async def test_tls_with_ca_and_client_certificate(make_bus: MakeBus, tls_proxy: int,
                                                  tls_files: dict[str, Path],
                                                  topic: str) -> None:
    query = (f"ssl=1&ssl_ca_file={tls_files['ca']}&ssl_cert_file={tls_files['client_cert']}"
             f"&ssl_key_file={tls_files['client_key']}&ssl_enforce_hostname_verification=1")
    bus = await make_bus(f"rabbit://guest:guest@127.0.0.1:{tls_proxy}/?{query}")
    async with bus.rpc_server(Target(topic=topic, server="s1"), [Echo()]):
        client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        assert await client.call({}, "echo", value="over TLS") == "over TLS"


async def test_tls_without_the_client_certificate_is_refused(tls_proxy: int,
                                                             tls_files: dict[str, Path]) -> None:
    with pytest.raises(relaybus.ConnectionFailure):
        await relaybus.connect(f"rabbit://guest:guest@127.0.0.1:{tls_proxy}/?ssl=1"
                               f"&ssl_ca_file={tls_files['ca']}", connect_timeout=3)


async def test_send_after_close_is_a_transport_error(bus: relaybus.Bus, topic: str) -> None:
    await bus.driver.close()
    await bus.driver.close()  # idempotent
    with pytest.raises(relaybus.TransportError, match="closed"):
        await bus.rpc_client(Target(topic=topic)).cast({}, "record", value=1)


# -- exchanges and topology ---------------------------------------------------------------

async def test_control_exchange_option_and_target_exchange(make_bus: MakeBus, tap: Tap,
                                                           topic: str) -> None:
    exchange = f"{topic}_nova"
    server_bus = await make_bus(control_exchange=exchange)
    query_bus = await make_bus(f"rabbit://guest:guest@127.0.0.1:5672/?control_exchange={exchange}")
    default_bus = await make_bus()
    try:
        async with server_bus.rpc_server(Target(topic=topic, server="s1"), [Echo()]):
            same = query_bus.rpc_client(Target(topic=topic), timeout=WAIT)
            assert await same.call({}, "echo", value=1) == 1
            with pytest.raises(relaybus.MessageUndeliverable):  # openstack has no such queue
                await default_bus.rpc_client(Target(topic=topic), timeout=WAIT).call(
                    {}, "echo", value=2)
            named = default_bus.rpc_client(Target(topic=topic, exchange=exchange), timeout=WAIT)
            assert await named.call({}, "echo", value=3) == 3
    finally:
        assert tap.connection is not None
        channel = await tap.connection.channel()
        await channel.exchange_delete(exchange)


def _rows(kind: str, *columns: str) -> list[dict[str, Any]]:
    return rabbitmq_json(f"list_{kind}", *columns)


async def test_declared_topology_is_oslos(make_bus: MakeBus, tap: Tap, topic: str) -> None:
    """What relaybus declares equals what oslo declared in the capture (topology.json)."""
    captured = __import__("json").loads((VECTORS / "topology.json").read_text())
    bus = await make_bus("rabbit://guest:guest@127.0.0.1:5672/?heartbeat=7"
                         "&rabbit_qos_prefetch_count=11")
    pool = f"{topic}-pool"
    tap.forget_later(pool)
    recorder = Echo()
    listener_endpoint = type("L", (), {"info": lambda *a: None})()
    async with bus.rpc_server(Target(topic=topic, server="server1"), [recorder]), \
            bus.notification_listener([Target(topic=f"{topic}_n")], [listener_endpoint],
                                      pool=pool):
        await bus.rpc_client(Target(topic=topic), timeout=WAIT).call({}, "echo", value=1)
        queues = {q["name"]: q for q in _rows("queues", "name", "durable", "auto_delete",
                                               "exclusive", "arguments", "type")}
        exchanges = {e["name"]: e for e in _rows("exchanges", "name", "type", "durable",
                                                  "auto_delete", "internal", "arguments")}
        connections = _rows("connections", "client_properties", "timeout")
        consumers = _rows("consumers", "queue_name", "prefetch_count")

    def same_as_captured(kind: list[dict[str, Any]], name: str, ours: dict[str, Any]) -> None:
        """Compare with the captured object ``name`` (``name_`` prefix: a random name)."""
        matches = [dict(item) for item in kind if item["name"] == name
                   or (name.endswith("_") and item["name"].startswith(name))]
        assert matches and all({**m, "name": ""} == {**matches[0], "name": ""}
                               for m in matches)
        expected = matches[0]
        expected.pop("name")
        assert {k: ours[k] for k in expected} == expected, ours["name"]

    snapshot = captured["with_pool_listener"]
    reply = [q for q in queues.values() if q["name"].startswith("reply_")
             and q["name"] in {c["queue_name"] for c in consumers}]
    fanout = [q for q in queues.values() if q["name"].startswith(f"{topic}_fanout_")]
    assert len(fanout) == 1 and len(fanout[0]["name"]) == len(f"{topic}_fanout_") + 32
    same_as_captured(snapshot["queues"], "wirecap", queues[topic])
    same_as_captured(snapshot["queues"], "wirecap.server1", queues[f"{topic}.server1"])
    same_as_captured(snapshot["queues"], "wirecap_fanout_", fanout[0])
    same_as_captured(snapshot["queues"], "reply_", reply[0])
    same_as_captured(snapshot["queues"], "wirecap-pool", queues[pool])
    same_as_captured(snapshot["exchanges"], "openstack", exchanges["openstack"])
    same_as_captured(snapshot["exchanges"], "wirecap_fanout", exchanges[f"{topic}_fanout"])
    ours = [c for c in connections if is_named(c, driver_of(bus).connection_name)]
    assert [c["timeout"] for c in ours] == [7]  # the heartbeat option
    prefetch = {c["queue_name"]: c["prefetch_count"] for c in consumers}
    assert prefetch[topic] == prefetch[pool] == 11


async def test_durable_and_quorum_options_declare_accordingly(make_bus: MakeBus, tap: Tap,
                                                              topic: str) -> None:
    exchange = f"{topic}_ex"
    durable = await make_bus(control_exchange=exchange, amqp_durable_queues=True)
    quorum = await make_bus(control_exchange=exchange, rabbit_quorum_queue="1")
    tap.forget_later(f"{topic}_d.info", f"{topic}_q.info")
    await durable.notifier("p", topics=[f"{topic}_d"]).info({}, "e", {})
    await quorum.notifier("p", topics=[f"{topic}_q"]).info({}, "e", {})
    assert tap.channel is not None and tap.connection is not None
    # an oslo peer with the same options declares the same objects without a 406
    await tap.channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    await tap.channel.queue_declare(f"{topic}_d.info", durable=True)
    await tap.channel.queue_declare(f"{topic}_q.info", durable=True,
                                    arguments={"x-queue-type": "quorum"})
    channel = await tap.connection.channel()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await channel.queue_declare(f"{topic}_d.info", durable=False)
    await tap.channel.exchange_delete(exchange)


async def test_an_existing_queue_with_other_settings_is_used_as_it_is(
        make_bus: MakeBus, tap: Tap, topic: str) -> None:
    """A deployment declared the notification queue durable; relaybus's defaults differ."""
    assert tap.channel is not None
    await tap.exchange("openstack")
    await tap.channel.queue_declare(f"{topic}.info", durable=True)
    tap.forget_later(f"{topic}.info")
    bus = await make_bus()
    got = asyncio.Event()
    endpoint = type("L", (), {"info": lambda self, *a: got.set()})()
    async with bus.notification_listener([Target(topic=topic)], [endpoint]):
        await bus.notifier("p", topics=[topic]).info({}, "e", {})
        await asyncio.wait_for(got.wait(), WAIT)


# -- message properties and confirms ------------------------------------------------------

async def test_rpc_message_ttl_expires_casts_and_calls_expire_with_their_timeout(
        make_bus: MakeBus, tap: Tap, topic: str) -> None:
    bus = await make_bus(rpc_message_ttl=5)
    await tap.exchange("openstack")
    queue = await tap.queue(topic, ("openstack", topic))
    client = bus.rpc_client(Target(topic=topic), timeout=0.5)
    await client.cast({}, "record", value=1)
    assert (await tap.get(queue)).header.properties.expiration == "5000"
    with pytest.raises(relaybus.MessagingTimeout):
        await client.call({}, "echo", value=1)
    assert (await tap.get(queue)).header.properties.expiration == "500"


async def test_without_publisher_confirms_casts_still_arrive(make_bus: MakeBus,
                                                             topic: str) -> None:
    bus = await make_bus(publisher_confirms=False)
    endpoint = Echo()
    async with bus.rpc_server(Target(topic=topic, server="s1"), [endpoint]):
        await bus.rpc_client(Target(topic=topic)).cast({}, "record", value="unconfirmed")
        await asyncio.wait_for(endpoint.cast_seen.wait(), WAIT)
    assert endpoint.casts == ["unconfirmed"]
    # unconfirmed casts cannot learn that nobody took them: documented, not raised
    await bus.rpc_client(Target(topic=f"{topic}_nobody")).cast({}, "record", value=1)


async def test_a_repeated_unique_id_is_served_once(bus: relaybus.Bus, tap: Tap,
                                                   topic: str) -> None:
    endpoint = Echo()
    body = (VECTORS / "rpc_cast_request.json").read_text()
    raw = __import__("json").loads(body)["body"].replace("record_cast", "record").replace(
        '\\"event\\": \\"cast-1\\", \\"count\\": 1', '\\"value\\": \\"once\\"')
    async with bus.rpc_server(Target(topic=topic, server="s1"), [endpoint]):
        for _ in range(2):
            await tap.publish("openstack", topic, raw.encode())
        # a different request afterwards proves both copies were taken before it
        await tap.publish("openstack", topic, raw.replace("once", "after").replace(
            message_of(parse_body(raw))["_unique_id"], "c" * 32).encode())
        while len(endpoint.casts) < 2:
            endpoint.cast_seen.clear()
            await asyncio.wait_for(endpoint.cast_seen.wait(), WAIT)
    assert endpoint.casts == ["once", "after"]


# -- prefetch and acknowledgement ---------------------------------------------------------

async def test_prefetch_bounds_what_a_listener_holds_and_acks_follow_the_handler(
        make_bus: MakeBus, tap: Tap, topic: str) -> None:
    bus = await make_bus(rabbit_qos_prefetch_count=2)
    release = asyncio.Event()
    started: list[int] = []
    finished: list[int] = []
    two_started, all_finished = asyncio.Event(), asyncio.Event()

    class Slow:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: Any) -> None:
            started.append(payload["n"])
            if len(started) == 2:
                two_started.set()
            await release.wait()
            finished.append(payload["n"])
            if len(finished) == 6:
                all_finished.set()

    tap.forget_later(f"{topic}.info")
    notifier = bus.notifier("p", topics=[topic])
    for n in range(6):
        await notifier.info({}, "e", {"n": n})
    async with bus.notification_listener([Target(topic=topic)], [Slow()]):
        await asyncio.wait_for(two_started.wait(), WAIT)
        messages, consumers = await tap.queue_info(f"{topic}.info")
        assert (messages, consumers) == (4, 1)  # 2 held unacknowledged, 4 still queued
        release.set()
        await asyncio.wait_for(all_finished.wait(), WAIT)
    assert sorted(finished) == list(range(6))
    assert (await tap.queue_info(f"{topic}.info"))[0] == 0


async def test_a_notification_in_progress_is_redelivered_if_the_listener_dies(
        make_bus: MakeBus, tap: Tap, topic: str) -> None:
    first, second = await make_bus(), await make_bus()
    taken = asyncio.Event()
    redelivered = asyncio.Event()

    class Stuck:
        async def info(self, *args: Any) -> None:
            taken.set()
            await asyncio.Event().wait()  # never finishes: the notification stays unacked

    class Fine:
        def info(self, *args: Any) -> None:
            redelivered.set()

    tap.forget_later(f"{topic}.info")
    stuck = first.notification_listener([Target(topic=topic)], [Stuck()], drain_timeout=0)
    await stuck.start()
    await first.notifier("p", topics=[topic]).info({}, "e", {})
    await asyncio.wait_for(taken.wait(), WAIT)
    await first.driver.close()  # the connection goes; the broker requeues what it held
    await stuck.stop()
    await stuck.wait()
    async with second.notification_listener([Target(topic=topic)], [Fine()]):
        await asyncio.wait_for(redelivered.wait(), WAIT)


# -- watching ------------------------------------------------------------------------------

async def test_a_tap_sees_requests_and_notifications_and_takes_nothing(
        bus: relaybus.Bus, tap: Tap, topic: str) -> None:
    seen: list[tuple[str, str, Any]] = []
    five = asyncio.Event()

    async def watch(exchange: str, routing_key: str, message: dict[str, Any]) -> None:
        seen.append((exchange, routing_key, message.get("method") or message["event_type"]))
        if len(seen) == 5:
            five.set()

    endpoint = Echo()
    tap.forget_later(f"{topic}.info")
    watching = await bus.tap(Target(topic=topic), watch)
    try:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [endpoint]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            assert await client.call({}, "echo", value=1) == 1
            assert await client.prepare(server="s1").call({}, "whoami") == "server"
            await client.prepare(fanout=True).cast({}, "record", value="all")
            await client.cast({}, "record", value="one")
            await bus.notifier("p", topics=[topic]).info({}, "compute.start", {})
            await asyncio.wait_for(five.wait(), WAIT)
            while len(endpoint.casts) < 2:  # the server still gets everything
                endpoint.cast_seen.clear()
                await asyncio.wait_for(endpoint.cast_seen.wait(), WAIT)
            assert sorted(endpoint.casts) == ["all", "one"]
    finally:
        await watching.stop()
    assert sorted(seen) == sorted([
        ("openstack", topic, "echo"), ("openstack", f"{topic}.s1", "whoami"),
        (f"{topic}_fanout", "", "record"), ("openstack", topic, "record"),
        ("openstack", f"{topic}.info", "compute.start")])


# -- reconnection --------------------------------------------------------------------------

async def test_server_and_client_come_back_after_the_broker_closes_their_connections(
        make_bus: MakeBus, topic: str) -> None:
    options = {"reconnect_delay": 0.1, "reconnect_delay_max": 0.5}
    server_bus, client_bus = await make_bus(**options), await make_bus(**options)
    endpoint = Echo()
    async with server_bus.rpc_server(Target(topic=topic, server="s1"), [endpoint]):
        client = client_bus.rpc_client(Target(topic=topic), timeout=WAIT)
        assert await client.call({}, "echo", value=1) == 1
        slow = asyncio.ensure_future(client.call({}, "sleep", seconds=1.0))
        await asyncio.wait_for(endpoint.sleeping.wait(), WAIT)  # the server is running it
        close_connection(driver_of(client_bus).connection_name)
        close_connection(driver_of(server_bus).connection_name)
        # The server sends the reply once reconnected; it waits in the caller's reply queue
        # (which outlives a connection) until the caller is back.
        assert await slow == "slept"
        assert await client.call({}, "echo", value=2) == 2
        await client.cast({}, "record", value=3)
        await asyncio.wait_for(endpoint.cast_seen.wait(), WAIT)
