"""How the memory broker hands bodies to its consumers: at once when idle, else in order.

A body that reaches an idle consumer on its own loop is handled inside the publish (no
task switch); one that arrives while the consumer is busy waits in its inbox and is
handled after, in order. Either way the handler runs in the consumer's context, never the
publisher's.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import relaybus
from relaybus import Target
from relaybus.drivers.memory.broker import DEFAULT_EXCHANGE, MemoryBroker
from relaybus.testing.behaviour import WAIT

caller_tag: contextvars.ContextVar[str] = contextvars.ContextVar("caller_tag", default="none")


class Peek:
    """An endpoint that reports what ``caller_tag`` holds where it runs."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.done = asyncio.Event()

    async def tag(self, ctxt: Any) -> str:
        return caller_tag.get()

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.seen.append(caller_tag.get())
        self.done.set()


async def test_endpoints_do_not_see_the_senders_context_variables() -> None:
    async with await relaybus.connect("memory://delivery_context") as bus:
        peek = Peek()
        server = bus.rpc_server(Target(topic="ctx", server="s1"), [peek])
        listener = bus.notification_listener([Target(topic="ctx_n")], [peek])
        async with server, listener:
            caller_tag.set("caller")
            assert await bus.rpc_client(Target(topic="ctx")).call({}, "tag") == "none"
            await bus.notifier("p", topics=["ctx_n"]).info({}, "e", {})
            await asyncio.wait_for(peek.done.wait(), WAIT)
        assert peek.seen == ["none"]


async def test_an_idle_consumer_handles_a_body_inside_the_publish() -> None:
    broker = MemoryBroker("idle")
    broker.declare_queue("q")
    handled: list[bytes] = []
    consumer = broker.consume("q", handled.append, "test.idle")
    assert broker.publish(DEFAULT_EXCHANGE, "q", b"one") == 1
    assert handled == [b"one"]  # no await in between
    await consumer.stop()


async def test_a_body_published_by_a_handler_to_its_own_queue_waits_its_turn() -> None:
    broker = MemoryBroker("reentrant")
    broker.declare_queue("q")
    steps: list[str] = []
    done = asyncio.Event()

    def handle(body: bytes) -> None:
        n = int(body)
        steps.append(f"start {n}")
        if n < 2:
            broker.publish(DEFAULT_EXCHANGE, "q", str(n + 1).encode())
        steps.append(f"end {n}")
        if n == 2:
            done.set()

    consumer = broker.consume("q", handle, "test.reentrant")
    broker.publish(DEFAULT_EXCHANGE, "q", b"0")
    await asyncio.wait_for(done.wait(), WAIT)
    assert steps == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]
    await consumer.stop()


async def test_bodies_wait_in_order_while_a_handler_is_pending() -> None:
    broker = MemoryBroker("pending")
    broker.declare_queue("q")
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    handled: list[bytes] = []

    def handle(body: bytes) -> asyncio.Future[None] | None:
        handled.append(body)
        return gate if body == b"0" else None

    consumer = broker.consume("q", handle, "test.pending")
    for n in range(3):
        broker.publish(DEFAULT_EXCHANGE, "q", str(n).encode())
    await asyncio.sleep(0)  # the consumer's task runs, and waits on the gate
    assert handled == [b"0"]
    assert consumer.held == 3  # the one pending and the two waiting behind it
    gate.set_result(None)
    await consumer.stop()  # hands over what its inbox holds, then ends
    assert handled == [b"0", b"1", b"2"]
    assert consumer.held == 0


async def test_a_failing_handler_does_not_stop_its_consumer(caplog: Any) -> None:
    broker = MemoryBroker("failing")
    broker.declare_queue("q")
    handled: list[bytes] = []

    def handle(body: bytes) -> None:
        if body == b"bad":
            raise ValueError("boom")
        handled.append(body)

    consumer = broker.consume("q", handle, "test.failing")
    broker.publish(DEFAULT_EXCHANGE, "q", b"bad")
    broker.publish(DEFAULT_EXCHANGE, "q", b"good")
    assert handled == [b"good"]
    assert "could not handle a message" in caplog.text
    await consumer.stop()


async def test_a_body_for_a_consumer_on_another_loop_is_handled_on_that_loop() -> None:
    broker = MemoryBroker("other_loop")
    broker.declare_queue("q")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test.other-loop")
    thread.start()
    try:
        handled: list[tuple[bytes, str]] = []
        done = threading.Event()

        def handle(body: bytes) -> None:
            handled.append((body, threading.current_thread().name))
            if len(handled) == 2:
                done.set()

        async def start() -> Any:
            return broker.consume("q", handle, "test.other-loop")

        consumer = asyncio.run_coroutine_threadsafe(start(), loop).result(WAIT)
        broker.publish(DEFAULT_EXCHANGE, "q", b"1")
        broker.publish(DEFAULT_EXCHANGE, "q", b"2")
        assert await asyncio.to_thread(done.wait, WAIT)
        assert handled == [(b"1", "test.other-loop"), (b"2", "test.other-loop")]
        asyncio.run_coroutine_threadsafe(consumer.stop(), loop).result(WAIT)
        assert consumer.held == 0
    finally:
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        loop.close()
