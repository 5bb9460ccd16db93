"""The blocking facade, used from plain threads."""

import threading
from typing import Any

import pytest

import relaybus
import relaybus.sync
from relaybus import Target


class Threaded:
    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    def fail(self, ctxt: Any) -> None:
        raise KeyError("missing")


class Seen:
    def __init__(self) -> None:
        self.got: list[Any] = []
        self.event = threading.Event()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        self.got.append(payload)
        self.event.set()


def test_blocking_call_cast_and_notify() -> None:
    seen = Seen()
    with relaybus.sync.connect("memory://sync") as bus:
        with bus.rpc_server(Target(topic="calc", server="s1"), [Threaded()]), \
                bus.notification_listener([Target(topic="sync_n")], [seen]):
            client = bus.rpc_client(Target(topic="calc"), timeout=10)
            assert client.call({}, "add", a=2, b=3) == 5
            client.prepare(server="s1").cast({}, "add", a=1, b=1)
            with pytest.raises(KeyError):
                client.call({}, "fail")
            bus.notifier("p", topics=["sync_n"]).info({}, "e", {"n": 1})
            assert seen.event.wait(10)
    assert seen.got == [{"n": 1}]


def test_sync_and_async_buses_talk_across_loops() -> None:
    import asyncio

    with relaybus.sync.connect("memory://cross") as sync_bus:
        with sync_bus.rpc_server(Target(topic="cross", server="s1"), [Threaded()]):
            async def call_from_another_loop() -> int:
                async with await relaybus.connect("memory://cross") as bus:
                    return await bus.rpc_client(Target(topic="cross"), timeout=10).call(
                        {}, "add", a=20, b=22)

            assert asyncio.run(call_from_another_loop()) == 42


def test_calls_from_many_threads() -> None:
    with relaybus.sync.connect("memory://threads") as bus:
        with bus.rpc_server(Target(topic="many", server="s1"), [Threaded()]):
            client = bus.rpc_client(Target(topic="many"), timeout=10)
            results: list[int] = []
            threads = [threading.Thread(target=lambda i=i: results.append(
                client.call({}, "add", a=i, b=0))) for i in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    assert sorted(results) == list(range(20))
