"""relaybus.sync refuses to block an event loop, and lets the interpreter exit unclosed.

The exit cases run real interpreters (``sys.executable -c``): what matters happens while
the interpreter shuts down, which a test cannot observe in its own process. The exit time
is bounded by awaiting the process with a generous timeout, far below the handlers' sleep.
"""

from __future__ import annotations

import asyncio
import re
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import relaybus
import relaybus.sync
from relaybus import RemoteError, Target
from relaybus.sync import BlockingCallInEventLoop
from relaybus.testing.brokers import require_broker

PROCESS_TIMEOUT = 45.0  # the blocked handlers below sleep for 600 s
NOISE = ("Task was destroyed", "never retrieved", "Traceback", "Exception ignored",
         "coroutine", "ResourceWarning", "Fatal Python error")


class Adder:
    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b


@pytest.fixture(scope="module")
def sync_bus() -> Iterator[relaybus.sync.SyncBus]:
    with relaybus.sync.connect("memory://loop_guard") as bus, \
            bus.rpc_server(Target(topic="guard", server="s1"), [Adder()]):
        yield bus


def _blocking_methods(bus: relaybus.sync.SyncBus) -> dict[str, Callable[[], Any]]:
    client = bus.rpc_client(Target(topic="guard"), timeout=5)
    server = bus.rpc_server(Target(topic="guard_other", server="s1"), [Adder()])
    notifier = bus.notifier("p", topics=["guard_n"])
    return {
        "connect": lambda: relaybus.sync.connect("memory://loop_guard"),
        "call": lambda: client.call({}, "add", a=1, b=2),
        "cast": lambda: client.cast({}, "add", a=1, b=2),
        "start": server.start,
        "stop": server.stop,
        "wait": server.wait,
        "enter": server.__enter__,
        "info": lambda: notifier.info({}, "e", {}),
        "close": bus.close,
    }


@pytest.mark.parametrize("method", ["connect", "call", "cast", "start", "stop", "wait",
                                    "enter", "info", "close"])
async def test_every_blocking_method_refuses_a_running_loop(
        sync_bus: relaybus.sync.SyncBus, method: str) -> None:
    blocking = _blocking_methods(sync_bus)[method]
    with pytest.raises(BlockingCallInEventLoop, match="async API"):
        blocking()
    assert isinstance(BlockingCallInEventLoop(), RuntimeError)
    # The bus still works for threads without a loop: nothing was half done.
    result = await asyncio.to_thread(
        sync_bus.rpc_client(Target(topic="guard"), timeout=5).call, {}, "add", a=2, b=3)
    assert result == 5


def test_asyncio_run_in_another_thread_is_refused_too(
        sync_bus: relaybus.sync.SyncBus) -> None:
    client = sync_bus.rpc_client(Target(topic="guard"), timeout=5)
    caught: list[BaseException] = []

    async def main() -> None:
        try:
            client.call({}, "add", a=1, b=1)
        except BlockingCallInEventLoop as exc:
            caught.append(exc)

    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    thread.join()
    assert len(caught) == 1


class Reentrant:
    """An ``async def`` endpoint runs on the facade's loop: the facade must refuse there."""

    def __init__(self, bus: relaybus.sync.SyncBus) -> None:
        self.bus = bus

    async def reenter(self, ctxt: Any) -> int:
        return int(self.bus.rpc_client(Target(topic="guard"), timeout=5).call(
            {}, "add", a=1, b=1))


def test_the_facade_loop_thread_itself_is_refused_not_deadlocked(
        sync_bus: relaybus.sync.SyncBus) -> None:
    with sync_bus.rpc_server(Target(topic="guard_reenter", server="s1"),
                             [Reentrant(sync_bus)]):
        client = sync_bus.rpc_client(Target(topic="guard_reenter"), timeout=30)
        with pytest.raises(RemoteError) as info:
            client.call({}, "reenter")
    assert info.value.exc_type == "BlockingCallInEventLoop"


# -- exit, in real interpreters ----------------------------------------------------------

async def _run_python(code: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "dev", "-c", textwrap.dedent(code),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), PROCESS_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"the interpreter did not exit within {PROCESS_TIMEOUT} s")
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# -X dev reports callbacks slower than 0.1 s ("Executing <Task ...> took 0.184 seconds"):
# a loaded machine's timing, not something left running at exit.
_SLOW_CALLBACK = re.compile(r"^Executing <.*> took \d+\.\d+ seconds$")


def _assert_quiet(err: str, allowed: tuple[str, ...] = ()) -> None:
    lines = [line for line in err.splitlines()
             if line.strip() and not any(text in line for text in allowed)
             and not _SLOW_CALLBACK.match(line)]
    assert lines == [], err
    for noise in NOISE:
        assert noise not in err, err


UNCLOSED = """
    import relaybus.sync
    from relaybus import Target

    class Adder:
        def add(self, ctxt, a, b):
            return a + b

        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            pass

    bus = relaybus.sync.connect({url!r})
    server = bus.rpc_server(Target(topic={topic!r}, server="s1"), [Adder()])
    server.start()
    listener = bus.notification_listener([Target(topic={topic!r})], [Adder()], pool="p")
    listener.start()
    client = bus.rpc_client(Target(topic={topic!r}), timeout=10)
    assert client.call({{}}, "add", a=1, b=2) == 3
    client.cast({{}}, "add", a=1, b=2)
    bus.notifier("n", topics=[{topic!r}]).info({{}}, "e", {{}})
    print("done", flush=True)
    # no server.stop(), no bus.close()
"""


async def test_unclosed_memory_bus_exits_cleanly() -> None:
    code, out, err = await _run_python(UNCLOSED.format(url="memory://exit",
                                                       topic="exit_memory"))
    assert (code, out) == (0, "done\n"), err
    _assert_quiet(err)


@pytest.mark.broker
async def test_unclosed_rabbit_bus_exits_cleanly() -> None:
    require_broker("RabbitMQ", "127.0.0.1", 5672)
    code, out, err = await _run_python(UNCLOSED.format(
        url="rabbit://guest:guest@127.0.0.1:5672/", topic="sync_exit_rabbit_unclosed"))
    assert (code, out) == (0, "done\n"), err
    _assert_quiet(err)


@pytest.mark.broker
async def test_unclosed_nats_bus_exits_cleanly() -> None:
    require_broker("NATS", "127.0.0.1", 4222)
    code, out, err = await _run_python(UNCLOSED.format(
        url="nats://127.0.0.1:4222", topic="sync_exit_nats_unclosed"))
    assert (code, out) == (0, "done\n"), err
    _assert_quiet(err)


BLOCKED_HANDLER = """
    import threading
    import relaybus.sync
    from relaybus import Target

    started = threading.Event()

    class Stuck:
        def hang(self, ctxt):
            started.set()
            threading.Event().wait(600)  # a handler that never finishes in time

    bus = relaybus.sync.connect("memory://exit_blocked")
    server = bus.rpc_server(Target(topic="stuck", server="s1"), [Stuck()],
                            drain_timeout=1.0)
    server.start()
    bus.rpc_client(Target(topic="stuck")).cast({}, "hang")
    assert started.wait(30)
    print("handler running", flush=True)
    raise SystemExit(3)  # the exit code must survive the exit hook
"""


async def test_a_blocked_handler_gets_the_drain_timeout_and_no_more() -> None:
    code, out, err = await _run_python(BLOCKED_HANDLER)
    assert (code, out) == (3, "handler running\n"), err
    _assert_quiet(err, allowed=("still in progress after 1.0 s were cancelled",
                                "cast hang on stuck failed: ServerError: the server stopped",
                                "handler thread(s) still running after the drain timeout"))
    assert "handler thread(s) still running" in err


ASYNC_MAIN = """
    import asyncio
    import relaybus.sync

    bus = relaybus.sync.connect("memory://exit_async")

    async def main():
        for attempt in (lambda: relaybus.sync.connect("memory://exit_async"), bus.close):
            try:
                attempt()
            except relaybus.sync.BlockingCallInEventLoop as exc:
                print(type(exc).__name__, isinstance(exc, RuntimeError), flush=True)

    asyncio.run(main())
"""


async def test_asyncio_run_main_gets_the_error_at_once_and_exits() -> None:
    code, out, err = await _run_python(ASYNC_MAIN)
    assert (code, out) == (0, "BlockingCallInEventLoop True\n" * 2), err
    _assert_quiet(err)
