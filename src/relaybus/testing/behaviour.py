"""The behaviour suite: what every relaybus transport must do, written once.

Bind it to a transport by subclassing, in a test module::

    from relaybus.testing.behaviour import NotificationBehaviour, RPCBehaviour

    class TestMyRPC(RPCBehaviour):
        transport_url = "mine://127.0.0.1:1234/"
        broker = ("My broker", "127.0.0.1", 1234)   # skipped (or failed in CI) when down

        async def inject_request(self, bus, topic, body, reply_to):
            ...  # publish raw bytes as a request to ``topic``, as a hostile peer would

    class TestMyNotifications(NotificationBehaviour):
        transport_url = "mine://127.0.0.1:1234/"
        pools_share_rpc_queues = True   # False where pools and RPC topics never share a queue

Every test derives its topics from its own name, so runs never collide on a shared broker.
Requires pytest with pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import relaybus
from relaybus import Target
from relaybus.errors import MessagingTimeout
from relaybus.message import build_request, new_unique_id, pack
from relaybus.testing.brokers import require_broker
from relaybus.testing.buses import bus_factory

WAIT = 10.0  # seconds an expected event may take before the test fails


class WidgetNotFound(Exception):
    """A custom exception with nova-style kwargs, for remote-error tests."""

    def __init__(self, message: str = "widget not found", **kwargs: Any) -> None:
        super().__init__(message)
        self.kwargs = kwargs


class Recorder:
    """Collects what endpoints saw, and lets a test await a number of entries."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def add(self, item: Any) -> None:
        """Record an item; safe from endpoint threads too."""
        self.items.append(item)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._changed.set()
        else:
            self._loop.call_soon_threadsafe(self._changed.set)

    async def wait_for(self, count: int, timeout: float = WAIT) -> list[Any]:
        """Wait until at least ``count`` items were recorded."""
        async with asyncio.timeout(timeout):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.items


class _Suite:
    transport_url: str = "memory://"
    broker: tuple[str, str, int] | None = None

    @pytest.fixture
    async def make_bus(self) -> AsyncIterator[Callable[..., Awaitable[relaybus.Bus]]]:
        if self.broker is not None:
            require_broker(*self.broker)
        async with bus_factory(self.transport_url) as make:
            yield make

    @pytest.fixture
    async def bus(self, make_bus: Callable[..., Awaitable[relaybus.Bus]]) -> relaybus.Bus:
        return await make_bus()

    @pytest.fixture
    def topic(self, request: pytest.FixtureRequest) -> str:
        name = re.sub(r"\W+", "_", request.node.name)[-40:]
        return f"rb_{name}_{uuid.uuid4().hex[:8]}"


class Compute:
    """An endpoint in the default namespace at version 1.0."""

    def __init__(self, name: str = "server", recorder: Recorder | None = None) -> None:
        self.name = name
        self.recorder = recorder
        self.sleeping = asyncio.Event()  # set once a sleep call has started

    async def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value

    async def whoami(self, ctxt: dict[str, Any]) -> str:
        return self.name

    async def get_context(self, ctxt: dict[str, Any]) -> dict[str, Any]:
        return dict(ctxt)

    async def record(self, ctxt: dict[str, Any], value: Any) -> None:
        if self.recorder is not None:
            self.recorder.add((self.name, value))

    def blocking_thread(self, ctxt: dict[str, Any]) -> str:
        return threading.current_thread().name

    async def fail_builtin(self, ctxt: dict[str, Any], text: str) -> None:
        raise ValueError(text)

    async def fail_custom(self, ctxt: dict[str, Any], widget_id: str) -> None:
        raise WidgetNotFound(f"Widget {widget_id} could not be found.", widget_id=widget_id)

    async def sleep(self, ctxt: dict[str, Any], seconds: float) -> str:
        self.sleeping.set()
        await asyncio.sleep(seconds)
        return "slept"

    async def _private(self, ctxt: dict[str, Any]) -> str:
        return "secret"


class VersionedCompute:
    target = Target(namespace="compute", version="1.3")

    async def run_instance(self, ctxt: dict[str, Any], instance_id: int) -> dict[str, Any]:
        return {"host": "host1", "instance_id": instance_id}


#: reply addresses a hostile requester may name; no transport may publish to any of them
HOSTILE_REPLY_ADDRESSES = (
    "",                                  # nothing
    "rb_victim",                         # another service's RPC queue
    "rb_victim.info",                    # a notification queue
    "$JS.API.STREAM.PURGE.rb_victim",    # JetStream's API (purges a stream)
    "relaybus.>",                        # a wildcard over every relaybus subject
    "_INBOX.*",                          # a wildcard over every inbox
    "reply_" + "0" * 32 + "." + "x" * 300,  # too long for AMQP, not a reply queue
)


def intake_refusals(bus: relaybus.Bus, reason: str) -> int:
    """How many received messages ``bus``'s driver refused for ``reason``."""
    return int(bus.driver.intake.refused[reason])  # type: ignore[attr-defined]


class RPCBehaviour(_Suite):
    """call / cast / fanout, dispatch, errors and timeouts."""

    async def test_call_returns_the_result(self, bus: relaybus.Bus, topic: str) -> None:
        value = {"text": "héllo ✓", "n": 42, "f": 2.5, "items": [1, None, True, False],
                 "nested": {"k": "v"}}
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            assert await client.call({}, "echo", value=value) == value

    async def test_call_across_two_buses(self, make_bus: Any, topic: str) -> None:
        server_bus, client_bus = await make_bus(), await make_bus()
        async with server_bus.rpc_server(Target(topic=topic, server="s1"), [Compute("s1")]):
            client = client_bus.rpc_client(Target(topic=topic), timeout=WAIT)
            assert await client.call({}, "whoami") == "s1"

    async def test_context_reaches_the_endpoint(self, bus: relaybus.Bus, topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            ctxt = await client.call({"user": "admin", "roles": ["a"]}, "get_context")
            assert ctxt["user"] == "admin" and ctxt["roles"] == ["a"]

    async def test_cast_reaches_the_server(self, bus: relaybus.Bus, topic: str) -> None:
        recorder = Recorder()
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute("s1", recorder)]):
            client = bus.rpc_client(Target(topic=topic))
            await client.cast({}, "record", value=7)
            assert await recorder.wait_for(1) == [("s1", 7)]

    async def test_quick_handlers_in_a_burst_still_let_other_tasks_run(
            self, bus: relaybus.Bus, topic: str) -> None:
        # a handler that never waits finishes inside its hand-over (relaybus.eager); the
        # consumer handing over a burst of them lets the loop turn every max_concurrency
        turns, limit = 0, 8

        async def ticker() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        recorder = Recorder()

        class Quick:
            async def tick(self, ctxt: dict[str, Any], n: int) -> None:
                recorder.add(turns)

        ticking = asyncio.create_task(ticker())
        try:
            async with bus.rpc_server(Target(topic=topic, server="s1"), [Quick()],
                                      max_concurrency=limit):
                client = bus.rpc_client(Target(topic=topic))
                for n in range(20 * limit):
                    await client.cast({}, "tick", n=n)
                seen = await recorder.wait_for(20 * limit)
        finally:
            ticking.cancel()
        window = limit + 1  # any limit + 1 handlers in a row saw the loop turn
        stalled = [i for i in range(len(seen) - window + 1) if seen[i] == seen[i + window - 1]]
        assert stalled == [], seen

    async def test_calls_are_shared_round_robin(self, bus: relaybus.Bus, topic: str) -> None:
        recorder = Recorder()
        servers = [bus.rpc_server(Target(topic=topic, server=f"s{i}"),
                                  [Compute(f"s{i}", recorder)]) for i in range(3)]
        for server in servers:
            await server.start()
        client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        answers = [await client.call({}, "whoami") for _ in range(30)]
        for server in servers:
            await server.stop()
            await server.wait()
        assert len(answers) == 30
        assert set(answers) == {"s0", "s1", "s2"}

    async def test_directed_call_reaches_only_that_server(self, bus: relaybus.Bus,
                                                          topic: str) -> None:
        servers = [bus.rpc_server(Target(topic=topic, server=f"s{i}"), [Compute(f"s{i}")])
                   for i in range(3)]
        for server in servers:
            await server.start()
        client = bus.rpc_client(Target(topic=topic), timeout=WAIT).prepare(server="s1")
        answers = {await client.call({}, "whoami") for _ in range(10)}
        for server in servers:
            await server.stop()
        assert answers == {"s1"}

    async def test_directed_cast_reaches_only_that_server(self, bus: relaybus.Bus,
                                                          topic: str) -> None:
        recorder = Recorder()
        servers = [bus.rpc_server(Target(topic=topic, server=f"s{i}"),
                                  [Compute(f"s{i}", recorder)]) for i in range(2)]
        for server in servers:
            await server.start()
        client = bus.rpc_client(Target(topic=topic)).prepare(server="s0")
        for n in range(5):
            await client.cast({}, "record", value=n)
        await recorder.wait_for(5)
        # a call afterwards on the same path flushes anything still in flight
        assert await client.prepare(timeout=WAIT).call({}, "whoami") == "s0"
        for server in servers:
            await server.stop()
        assert {name for name, _ in recorder.items} == {"s0"}

    async def test_fanout_cast_reaches_every_server_once(self, bus: relaybus.Bus,
                                                         topic: str) -> None:
        recorder = Recorder()
        servers = [bus.rpc_server(Target(topic=topic, server=f"s{i}"),
                                  [Compute(f"s{i}", recorder)]) for i in range(3)]
        for server in servers:
            await server.start()
        client = bus.rpc_client(Target(topic=topic))
        await client.prepare(fanout=True).cast({}, "record", value="all")
        await recorder.wait_for(3)
        for name in ("s0", "s1", "s2"):  # a directed call to each flushes its queue
            await client.prepare(server=name, timeout=WAIT).call({}, "echo", value=1)
        for server in servers:
            await server.stop()
        assert sorted(recorder.items) == [("s0", "all"), ("s1", "all"), ("s2", "all")]

    async def test_fanout_call_is_refused(self, bus: relaybus.Bus, topic: str) -> None:
        client = bus.rpc_client(Target(topic=topic, fanout=True))
        with pytest.raises(relaybus.InvalidTarget, match="fanout"):
            await client.call({}, "echo", value=1)

    async def test_namespace_and_version_dispatch(self, bus: relaybus.Bus, topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"),
                                  [Compute(), VersionedCompute()]):
            client = bus.rpc_client(Target(topic=topic, namespace="compute"), timeout=WAIT)
            for version in ("1.0", "1.3"):
                result = await client.prepare(version=version).call({}, "run_instance",
                                                                    instance_id=52)
                assert result == {"host": "host1", "instance_id": 52}
            for version in ("1.4", "2.0"):
                with pytest.raises(relaybus.UnsupportedVersion) as info:
                    await client.prepare(version=version).call({}, "run_instance",
                                                               instance_id=1)
                assert info.value.version == version
            with pytest.raises(relaybus.UnsupportedVersion):
                await client.prepare(namespace="other").call({}, "run_instance", instance_id=1)
            with pytest.raises(relaybus.NoSuchMethod):
                await client.call({}, "echo", value=1)  # echo lives in the default namespace

    async def test_unknown_and_private_methods(self, bus: relaybus.Bus, topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            with pytest.raises(relaybus.NoSuchMethod) as info:
                await client.call({}, "no_such_method")
            assert info.value.method == "no_such_method"
            with pytest.raises(relaybus.NoSuchMethod):
                await client.call({}, "_private")

    async def test_explicit_access_policy(self, bus: relaybus.Bus, topic: str) -> None:
        class Exposed:
            @relaybus.expose
            async def shown(self, ctxt: dict[str, Any]) -> str:
                return "shown"

            async def hidden(self, ctxt: dict[str, Any]) -> str:
                return "hidden"

        async with bus.rpc_server(Target(topic=topic, server="s1"), [Exposed()],
                                  access_policy=relaybus.ExplicitRPCAccessPolicy()):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            assert await client.call({}, "shown") == "shown"
            with pytest.raises(relaybus.NoSuchMethod):
                await client.call({}, "hidden")

    async def test_sync_methods_run_in_threads(self, bus: relaybus.Bus, topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            thread_name = await client.call({}, "blocking_thread")
            assert thread_name != threading.current_thread().name

    async def test_builtin_exception_keeps_its_type(self, bus: relaybus.Bus,
                                                    topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            with pytest.raises(ValueError, match="bad value: 42") as info:
                await client.call({}, "fail_builtin", text="bad value: 42")
            remote_traceback = info.value.remote_traceback  # type: ignore[attr-defined]
            assert isinstance(remote_traceback, str) and "fail_builtin" in remote_traceback

    async def test_bad_arguments_come_back_as_type_error(self, bus: relaybus.Bus,
                                                         topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            with pytest.raises(TypeError):
                await client.call({}, "echo", wrong_name=1)

    async def test_custom_exception_from_allowed_module(self, bus: relaybus.Bus,
                                                        topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            allowed = bus.rpc_client(Target(topic=topic), timeout=WAIT,
                                     allowed_remote_exmods=[__name__])
            with pytest.raises(WidgetNotFound) as info:
                await allowed.call({}, "fail_custom", widget_id="w-17")
            assert info.value.kwargs == {"widget_id": "w-17"}
            not_allowed = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            with pytest.raises(relaybus.RemoteError) as remote:
                await not_allowed.call({}, "fail_custom", widget_id="w-17")
            assert remote.value.exc_type == "WidgetNotFound"
            assert remote.value.value == "Widget w-17 could not be found."

    async def test_call_times_out(self, bus: relaybus.Bus, topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()],
                                  drain_timeout=0):
            client = bus.rpc_client(Target(topic=topic), timeout=0.3)
            with pytest.raises(relaybus.MessagingTimeout):
                await client.call({}, "sleep", seconds=30)
            with pytest.raises(TimeoutError):  # MessagingTimeout is a TimeoutError
                await client.call({}, "sleep", seconds=30)

    async def test_call_to_nobody_fails_at_once(self, bus: relaybus.Bus, topic: str) -> None:
        client = bus.rpc_client(Target(topic=topic), timeout=60)
        with pytest.raises(relaybus.MessageUndeliverable):
            await asyncio.wait_for(client.call({}, "echo", value=1), WAIT)

    async def test_cast_to_nobody_fails_at_once(self, bus: relaybus.Bus, topic: str) -> None:
        client = bus.rpc_client(Target(topic=topic))
        with pytest.raises(relaybus.MessageUndeliverable):
            await asyncio.wait_for(client.cast({}, "record", value=1), WAIT)

    async def test_call_to_an_unknown_server_fails_at_once(self, bus: relaybus.Bus,
                                                           topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic=topic, server="nobody"), timeout=60)
            with pytest.raises(relaybus.MessageUndeliverable):
                await asyncio.wait_for(client.call({}, "echo", value=1), WAIT)

    async def test_unencodable_argument_fails_before_sending(self, bus: relaybus.Bus,
                                                             topic: str) -> None:
        recorder = Recorder()
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute("s1", recorder)]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            with pytest.raises(TypeError, match="object"):
                await client.cast({}, "record", value=object())
            await client.call({}, "record", value="after")
            assert recorder.items == [("s1", "after")]

    async def test_message_too_large(self, make_bus: Any, topic: str) -> None:
        bus = await make_bus(max_message_size=2048)
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            with pytest.raises(relaybus.MessageTooLarge):
                await client.call({}, "echo", value="x" * 4096)
            assert await client.call({}, "echo", value="small") == "small"

    async def test_version_cap(self, bus: relaybus.Bus, topic: str) -> None:
        client = bus.rpc_client(Target(topic=topic, version="1.5"), version_cap="1.3")
        assert client.can_send_version("1.3")
        assert not client.can_send_version("1.5")
        assert not client.can_send_version("2.0")
        with pytest.raises(relaybus.RPCVersionCapError):
            await client.cast({}, "run_instance", instance_id=1)

    async def test_call_monitor_heartbeats_keep_a_long_call_alive(self, bus: relaybus.Bus,
                                                                 topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT, call_monitor_timeout=2)
            assert await client.call({}, "sleep", seconds=2.6) == "slept"

    async def test_stop_lets_calls_in_progress_finish(self, bus: relaybus.Bus,
                                                      topic: str) -> None:
        compute = Compute()
        server = bus.rpc_server(Target(topic=topic, server="s1"), [compute])
        await server.start()
        client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        call = asyncio.ensure_future(client.call({}, "sleep", seconds=0.5))
        await asyncio.wait_for(compute.sleeping.wait(), WAIT)
        await server.stop()
        await server.wait()
        assert await call == "slept"
        with pytest.raises(relaybus.MessageUndeliverable):
            await client.call({}, "echo", value=1)

    async def test_many_concurrent_calls_get_their_own_replies(self, bus: relaybus.Bus,
                                                               topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            results = await asyncio.gather(*(client.call({}, "echo", value=i)
                                             for i in range(200)))
            assert results == list(range(200))

    async def inject_request(self, bus: relaybus.Bus, topic: str, body: bytes,
                             reply_to: str | None) -> None:
        """Publish ``body`` as a request to ``topic`` with the broker's own client, as a
        hostile peer would (``reply_to``: the transport-level reply address, if any).
        Each binding implements it."""
        pytest.fail(f"{type(self).__name__} must implement inject_request for its transport")

    async def test_a_hostile_reply_address_is_refused(self, bus: relaybus.Bus,
                                                      topic: str) -> None:
        recorder = Recorder()
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute("s1", recorder)]):
            for address in HOSTILE_REPLY_ADDRESSES:
                body = pack(build_request("record", {"value": address}, {},
                                          msg_id=new_unique_id(), reply_q=address))
                await self.inject_request(bus, topic, body, address or None)
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            # handled after the injected ones (one subscription hands requests in order)
            assert await client.call({}, "echo", value="still serving") == "still serving"
        assert recorder.items == []  # no method ran for a request it could not answer
        assert intake_refusals(bus, "reply-address") == len(HOSTILE_REPLY_ADDRESSES)

    async def test_a_received_request_over_the_size_limit_is_refused(
            self, make_bus: Any, topic: str) -> None:
        server_bus = await make_bus(max_message_size=4096)
        client_bus = await make_bus()
        recorder = Recorder()
        server = server_bus.rpc_server(Target(topic=topic, server="s1"),
                                       [Compute("s1", recorder)])
        async with server:
            client = client_bus.rpc_client(Target(topic=topic), timeout=1)
            with pytest.raises(MessagingTimeout):  # never decoded, so nobody can answer
                await client.call({}, "record", value="x" * 8192)
            await client.call({}, "record", value="small")
        assert recorder.items == [("s1", "small")]
        assert intake_refusals(server_bus, "too-large") == 1

    async def test_a_malformed_call_is_refused_at_once(self, bus: relaybus.Bus,
                                                       topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            request = relaybus.message.Request(method="", args={}, context={})
            async with asyncio.timeout(WAIT):  # at once: long before any call timeout
                reply = await bus.driver.send(Target(topic=topic), request,
                                              wait_for_reply=True, timeout=300)
        assert reply is not None and reply.failure is not None
        assert reply.failure["class"] == "MalformedMessage"
        assert "method" in reply.failure["message"]

    async def test_nothing_is_left_running_after_close(self, make_bus: Any,
                                                       topic: str) -> None:
        before = asyncio.all_tasks()
        bus = await make_bus()
        recorder = Recorder()
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute("s1", recorder)]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            assert await client.call({}, "echo", value=1) == 1
            await client.cast({}, "record", value=2)
            await recorder.wait_for(1)
        await bus.close()
        left = [t for t in asyncio.all_tasks() - before if not t.done()]
        assert left == [], [t.get_name() for t in left]
        # and the driver's own close ended its tasks: its task owner had nothing to cancel
        assert bus.driver.tasks.left_at_close == []

    async def test_a_call_cancelled_at_any_await_leaves_nothing_behind(
            self, bus: relaybus.Bus, topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            assert await client.call({}, "echo", value="warm") == "warm"  # reply inbox ready
            running = {t for t in asyncio.all_tasks() if not t.done()}
            for steps in range(40):  # cancel after 0, 1, 2 ... turns of the event loop
                call = asyncio.ensure_future(client.call({}, "echo", value=steps))
                for _ in range(steps):
                    await asyncio.sleep(0)  # one loop turn: a scheduling point, not a wait
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    assert await call == steps  # it may have finished first
            assert await client.call({}, "echo", value="after") == "after"
            left = {t for t in asyncio.all_tasks() if not t.done()} - running
            left.discard(asyncio.current_task())
            assert not left, sorted(t.get_name() for t in left)
            pending = getattr(bus.driver, "_replies", None)
            if pending is not None:  # the drivers that keep a PendingReplies table
                assert len(pending) == 0

    async def test_cancelled_call_leaves_nothing_behind(self, bus: relaybus.Bus,
                                                        topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute()],
                                  drain_timeout=0):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            call = asyncio.ensure_future(client.call({}, "sleep", seconds=30))
            await client.call({}, "echo", value=1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert await client.call({}, "echo", value=2) == 2


class Listener:
    """A notification endpoint that records what it gets."""

    def __init__(self, recorder: Recorder, name: str = "listener",
                 filter_rule: relaybus.NotificationFilter | None = None) -> None:
        self.recorder = recorder
        self.name = name
        if filter_rule is not None:
            self.filter_rule = filter_rule

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict[str, Any]) -> None:
        self.recorder.add({"listener": self.name, "priority": "info", "ctxt": ctxt,
                           "publisher_id": publisher_id, "event_type": event_type,
                           "payload": payload, "metadata": metadata})

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
              metadata: dict[str, Any]) -> None:
        self.recorder.add({"listener": self.name, "priority": "error",
                           "event_type": event_type, "payload": payload})


class NotificationBehaviour(_Suite):
    """Notifier, listeners, pools, filters, requeue and batches."""

    #: whether a pool's queue and an RPC topic's queue live in one namespace (oslo's
    #: topology: memory, rabbit); where they do, a pool named like an RPC topic is refused
    pools_share_rpc_queues = True

    async def test_a_pool_named_like_an_rpc_topic_is_refused(self, bus: relaybus.Bus,
                                                             topic: str) -> None:
        recorder = Recorder()
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute("s1")]):
            listener = bus.notification_listener([Target(topic=f"{topic}_n")],
                                                 [Listener(recorder)], pool=topic)
            if self.pools_share_rpc_queues:
                with pytest.raises(relaybus.InvalidTarget, match=f"pool {topic!r}.*RPC topic "
                                                             f"{topic!r}"):
                    await listener.start()
                return
            async with listener:  # no shared queue: both work side by side
                client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
                assert await client.call({}, "whoami") == "s1"
                await bus.notifier("p", topics=[f"{topic}_n"]).info({}, "e.x", {})
                await recorder.wait_for(1)

    async def test_listener_gets_the_notification(self, bus: relaybus.Bus, topic: str) -> None:
        recorder = Recorder()
        async with bus.notification_listener([Target(topic=topic)], [Listener(recorder)]):
            notifier = bus.notifier("compute.host1", topics=[topic])
            await notifier.info({"user": "admin"}, "compute.instance.create.end",
                                {"instance_id": 52})
            (got,) = await recorder.wait_for(1)
        assert got["publisher_id"] == "compute.host1"
        assert got["event_type"] == "compute.instance.create.end"
        assert got["payload"] == {"instance_id": 52}
        assert got["ctxt"]["user"] == "admin"
        assert uuid.UUID(got["metadata"]["message_id"])
        assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$",
                        got["metadata"]["timestamp"])

    async def test_each_priority_goes_to_its_method(self, bus: relaybus.Bus,
                                                    topic: str) -> None:
        recorder = Recorder()
        async with bus.notification_listener([Target(topic=topic)], [Listener(recorder)]):
            notifier = bus.notifier("p", topics=[topic])
            await notifier.debug({}, "ignored.debug", {})  # no debug method: not consumed
            await notifier.error({}, "e.1", {"n": 1})
            await notifier.info({}, "i.1", {"n": 2})
            items = await recorder.wait_for(2)
        assert sorted((i["priority"], i["event_type"]) for i in items) == \
            [("error", "e.1"), ("info", "i.1")]

    async def test_every_pool_gets_every_notification(self, make_bus: Any, topic: str) -> None:
        buses = [await make_bus() for _ in range(4)]
        recorder = Recorder()
        target = [Target(topic=topic)]
        listeners = [
            buses[0].notification_listener(target, [Listener(recorder, "a1")], pool="a"),
            buses[1].notification_listener(target, [Listener(recorder, "a2")], pool="a"),
            buses[2].notification_listener(target, [Listener(recorder, "b1")], pool="b"),
            buses[3].notification_listener(target, [Listener(recorder, "d1")]),
        ]
        for listener in listeners:
            await listener.start()
        notifier = buses[0].notifier("p", topics=[topic])
        for n in range(10):
            await notifier.info({}, "e", {"n": n})
        items = await recorder.wait_for(30)
        for listener in listeners:
            await listener.stop()
            await listener.wait()
        by_pool: dict[str, list[int]] = {"a": [], "b": [], "d": []}
        for item in items:
            by_pool[item["listener"][0]].append(item["payload"]["n"])
        assert {pool: sorted(ns) for pool, ns in by_pool.items()} == \
            {"a": list(range(10)), "b": list(range(10)), "d": list(range(10))}

    async def test_notifications_wait_for_a_listener(self, bus: relaybus.Bus,
                                                     topic: str) -> None:
        notifier = bus.notifier("p", topics=[topic])
        await notifier.info({}, "early", {"n": 1})
        recorder = Recorder()
        async with bus.notification_listener([Target(topic=topic)], [Listener(recorder)]):
            (got,) = await recorder.wait_for(1)
        assert got["event_type"] == "early"

    async def test_filter_rule(self, bus: relaybus.Bus, topic: str) -> None:
        recorder = Recorder()
        rule = relaybus.NotificationFilter(event_type=r"^compute\.instance\.",
                                           publisher_id=r"^compute\.")
        async with bus.notification_listener([Target(topic=topic)],
                                             [Listener(recorder, filter_rule=rule)]):
            await bus.notifier("network.h1", topics=[topic]).info({}, "compute.instance.x", {})
            notifier = bus.notifier("compute.h1", topics=[topic])
            await notifier.info({}, "volume.create", {})
            await notifier.info({}, "compute.instance.create.end", {"n": 1})
            (got,) = await recorder.wait_for(1)
        assert got["event_type"] == "compute.instance.create.end"

    async def test_requeue_redelivers(self, bus: relaybus.Bus, topic: str) -> None:
        seen: list[str] = []
        done = asyncio.Event()

        class Flaky:
            async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                           metadata: dict[str, Any]) -> Any:
                seen.append(metadata["message_id"])
                if len(seen) == 1:
                    return relaybus.NotificationResult.REQUEUE
                done.set()
                return None

        async with bus.notification_listener([Target(topic=topic)], [Flaky()]):
            await bus.notifier("p", topics=[topic]).info({}, "e", {})
            await asyncio.wait_for(done.wait(), WAIT)
        assert len(seen) == 2 and seen[0] == seen[1]

    async def test_a_failing_handler_does_not_stop_the_listener(self, bus: relaybus.Bus,
                                                                topic: str) -> None:
        recorder = Recorder()

        class Picky:
            async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                           metadata: dict[str, Any]) -> None:
                if payload.get("bad"):
                    raise RuntimeError("cannot handle this one")
                recorder.add(payload)

        async with bus.notification_listener([Target(topic=topic)], [Picky()]):
            notifier = bus.notifier("p", topics=[topic])
            await notifier.info({}, "e", {"bad": True})
            await notifier.info({}, "e", {"n": 2})
            assert await recorder.wait_for(1) == [{"n": 2}]

    async def test_batch_listener(self, bus: relaybus.Bus, topic: str) -> None:
        batches: list[list[dict[str, Any]]] = []
        done = asyncio.Event()

        class Batch:
            async def info(self, messages: list[dict[str, Any]]) -> None:
                batches.append(messages)
                if sum(len(b) for b in batches) >= 5:
                    done.set()

        async with bus.batch_notification_listener([Target(topic=topic)], [Batch()],
                                                   batch_size=3, batch_timeout=0.2):
            notifier = bus.notifier("p", topics=[topic])
            for n in range(5):
                await notifier.info({}, "e", {"n": n})
            await asyncio.wait_for(done.wait(), WAIT)
        payloads = sorted(m["payload"]["n"] for b in batches for m in b)
        assert payloads == list(range(5))
        assert all(len(b) <= 3 for b in batches)

    async def test_unencodable_payload_fails_at_the_notifier(self, bus: relaybus.Bus,
                                                             topic: str) -> None:
        with pytest.raises(TypeError):
            await bus.notifier("p", topics=[topic]).info({}, "e", {"x": object()})
