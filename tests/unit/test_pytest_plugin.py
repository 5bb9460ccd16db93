"""relaybus's pytest plugin: its fixtures used directly, and run by pytest on test files.

The files run through ``pytester`` load the plugin with ``-p`` as a user would (its
``pytest11`` entry point does the same once installed); a fake installed distribution
shows which entry point name lets ``-p`` and ``pytest_plugins`` still work beside it.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import relaybus
from relaybus import ExplicitRPCAccessPolicy, InvalidArguments, NoSuchMethod, Target, expose
from relaybus.testing.spies import NotificationCapture, Spy, WaitTimeout, spy_on

pytest_plugins = ["pytester", "relaybus.testing.pytest_plugin"]

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "relaybus.testing.pytest_plugin"
# The type of the captured_notifications fixture (not imported from the plugin's module:
# pytest must import that first, to rewrite its asserts).
CaptureNotifications = Callable[..., Awaitable[NotificationCapture]]
INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


class Calc:
    target = Target(namespace="calc", version="1.2")

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def add(self, ctxt: Any, x: int, y: int) -> int:
        return x + y

    def multiply(self, ctxt: Any, x: Any, y: Any) -> Any:  # runs in a server thread
        return x * y

    async def wait_for_release(self, ctxt: Any) -> str:
        await self.release.wait()
        return "released"

    def _private(self, ctxt: Any) -> None:
        raise AssertionError("never reachable")


async def _serve(bus: relaybus.Bus, endpoint: object, **options: Any) -> relaybus.RPCClient:
    server = bus.rpc_server(Target(topic="calc", server="s1"), [endpoint], **options)
    await server.start()
    return bus.rpc_client(Target(topic="calc", namespace="calc", version="1.2"), timeout=5)


# -- spies ----------------------------------------------------------------------------------

async def test_a_spy_records_each_call_and_returns_them_in_order(
        relaybus_bus: relaybus.Bus, relaybus_spy: Any) -> None:
    spy = relaybus_spy(Calc())
    client = await _serve(relaybus_bus, spy)
    assert await client.call({"user": "ann"}, "add", x=1, y=2) == 3
    assert await client.call({}, "multiply", x=3, y=4) == 12  # from a handler thread
    assert await client.call({}, "add", x=5, y=6) == 11

    first = await spy.next_call("add", timeout=2)
    assert (first.method, first.args, first.kwargs) == ("add", (), {"x": 1, "y": 2})
    assert first.arguments == {"x": 1, "y": 2}
    assert first.ctxt["user"] == "ann"
    assert (await spy.next_call("add", timeout=2)).arguments == {"x": 5, "y": 6}
    assert (await spy.next_call("multiply", timeout=2)).arguments == {"x": 3, "y": 4}
    assert [call.method for call in spy.calls] == ["add", "multiply", "add"]
    assert len(spy.calls_to("add")) == 2
    assert isinstance(spy.wrapped, Calc)


async def test_next_call_waits_for_a_call_made_later() -> None:
    spy = spy_on(Calc())
    method = spy.__relaybus_method__("multiply")
    assert method is not None
    worker = threading.Thread(target=method, args=({}, 6, 7))
    waiting = asyncio.ensure_future(spy.next_call("multiply", timeout=5))
    # the thread starts on the loop turn after the wait's first step: a call made later
    asyncio.get_running_loop().call_soon(worker.start)
    call = await waiting
    worker.join()
    assert call.arguments == {"x": 6, "y": 7}


async def test_a_call_is_recorded_as_it_starts(relaybus_bus: relaybus.Bus) -> None:
    calc = Calc()
    spy = spy_on(calc)
    client = await _serve(relaybus_bus, spy)
    pending = asyncio.ensure_future(client.call({}, "wait_for_release"))
    await spy.next_call("wait_for_release", timeout=2)  # still blocked inside
    assert not pending.done()
    calc.release.set()
    assert await pending == "released"


async def test_a_missing_call_fails_the_test_saying_what_came(relaybus_bus: relaybus.Bus) -> None:
    spy = spy_on(Calc())
    client = await _serve(relaybus_bus, spy)
    await client.call({}, "add", x=1, y=2)
    await spy.next_call("add", timeout=2)
    with pytest.raises(WaitTimeout) as failed:
        await spy.next_call("add", timeout=0.05)
    assert isinstance(failed.value, AssertionError)  # pytest reports a failure, not an error
    assert str(failed.value) == ("no call #2 to Calc.add (1 calls so far: "
                                 "add({'x': 1, 'y': 2})) within 0.05 s")
    with pytest.raises(WaitTimeout, match=r"no 2 calls to Calc.add \(1 calls so far"):
        await spy.wait_for_calls("add", 2, timeout=0.05)


async def test_a_spy_reaches_what_the_endpoint_would_and_nothing_else(
        relaybus_bus: relaybus.Bus) -> None:
    spy = spy_on(Calc())
    client = await _serve(relaybus_bus, spy)
    for name in ("_private", "next_call", "calls_to", "wrapped", "__relaybus_method__"):
        with pytest.raises(NoSuchMethod):
            await client.call({}, name)
    with pytest.raises(InvalidArguments):  # the typed contract still holds
        await client.call({}, "add", x="one", y=2)
    assert spy.calls == []
    with pytest.raises(ValueError, match="Calc has no method 'typo'"):
        await spy.next_call("typo")
    # the endpoint's target is the spy's: another version is refused
    other = relaybus_bus.rpc_client(Target(topic="calc", namespace="calc", version="2.0"))
    with pytest.raises(relaybus.UnsupportedVersion):
        await other.call({}, "add", x=1, y=2)


async def test_a_spy_keeps_the_access_policy(relaybus_bus: relaybus.Bus) -> None:
    class Guarded:
        @expose
        async def open(self, ctxt: Any) -> str:
            return "open"

        async def closed(self, ctxt: Any) -> str:
            return "closed"

    spy = spy_on(Guarded())
    server = relaybus_bus.rpc_server(Target(topic="guarded", server="s"), [spy],
                                     access_policy=ExplicitRPCAccessPolicy())
    await server.start()
    client = relaybus_bus.rpc_client(Target(topic="guarded"))
    assert await client.call({}, "open") == "open"
    with pytest.raises(NoSuchMethod):
        await client.call({}, "closed")
    assert [call.method for call in spy.calls] == ["open"]


async def test_a_spy_wraps_an_endpoint_that_resolves_its_own_names(
        relaybus_bus: relaybus.Bus) -> None:
    class Resolving:
        def __relaybus_method__(self, name: str) -> Any:
            return self.echo if name == "say" else None

        def echo(self, ctxt: Any, text: str) -> str:
            return text

    spy = spy_on(Resolving())
    server = relaybus_bus.rpc_server(Target(topic="resolving", server="s"), [spy])
    await server.start()
    client = relaybus_bus.rpc_client(Target(topic="resolving"))
    assert await client.call({}, "say", text="hi") == "hi"
    with pytest.raises(NoSuchMethod):
        await client.call({}, "echo")
    assert (await spy.next_call("say", timeout=2)).arguments == {"text": "hi"}


async def test_a_spy_on_a_listener_endpoint(relaybus_bus: relaybus.Bus) -> None:
    class Watcher:
        filter_rule = relaybus.NotificationFilter(event_type=r"^compute\.")

        def warning(self, ctxt: Any, publisher_id: str, event_type: str, payload: dict[str, int],
                    metadata: dict[str, Any]) -> None:
            pass

    spy = spy_on(Watcher())
    listener = relaybus_bus.notification_listener([Target(topic="notifications")], [spy])
    await listener.start()
    notifier = relaybus_bus.notifier("host-1")
    await notifier.warn({}, "network.ignored", {"n": 0})  # filtered out by the endpoint's rule
    await notifier.warn({}, "compute.hot", {"n": 1})
    call = await spy.next_call("warning", timeout=2)
    assert call.args[:3] == ("host-1", "compute.hot", {"n": 1})
    assert call.arguments["event_type"] == "compute.hot"
    assert len(spy.calls) == 1


def test_spy_on_refuses_what_is_not_an_endpoint() -> None:
    with pytest.raises(TypeError):
        spy_on(Calc)
    with pytest.raises(TypeError):
        spy_on(spy_on(Calc()))


async def test_a_timeout_must_be_positive() -> None:
    spy = spy_on(Calc())
    for bad in (0, -1, float("nan"), True):
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            await spy.next_call("add", timeout=bad)


# -- captured notifications --------------------------------------------------------------

async def test_captured_notifications_take_nothing_from_the_listeners_under_test(
        relaybus_bus: relaybus.Bus, captured_notifications: CaptureNotifications) -> None:
    captured = await captured_notifications()  # the default topic: notifications
    audits = await captured_notifications(Target(topic="audit-log"))

    class App:
        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: Any) -> None:
            pass

    app = spy_on(App())
    listener = relaybus_bus.notification_listener([Target(topic="notifications")], [app])
    await listener.start()
    notifier = relaybus_bus.notifier("svc", topics=["notifications", "audit-log"])
    await notifier.info({"request_id": "r1"}, "thing.made", {"id": 1})
    await notifier.error({}, "thing.broke", {"id": 2})
    await notifier.info({}, "thing.made", {"id": 3})

    first = await captured.next(timeout=2)
    assert (first.priority, first.event_type, first.payload) == ("info", "thing.made", {"id": 1})
    assert first.publisher_id == "svc" and first.ctxt["request_id"] == "r1"
    assert "message_id" in first.metadata
    assert (await captured.next(timeout=2)).priority == "error"
    made = await captured.wait_for(2, event_type="thing.made", timeout=2)
    assert [n.payload for n in made] == [{"id": 1}, {"id": 3}]
    assert len(await audits.wait_for(3, timeout=2)) == 3
    assert len(await app.wait_for_calls("info", 2, timeout=2)) == 2  # the app got its own
    assert len(captured) == 3


async def test_a_missing_notification_fails_saying_what_came(
        relaybus_bus: relaybus.Bus, captured_notifications: CaptureNotifications) -> None:
    captured = await captured_notifications("notifications")
    await relaybus_bus.notifier("svc").info({}, "thing.made", {})
    with pytest.raises(WaitTimeout, match=r"^no 2 notifications \(1 so far: info thing.made\)"):
        await captured.wait_for(2, timeout=0.05)
    with pytest.raises(WaitTimeout, match=r"^no 1 notifications of other \(1 so far"):
        await captured.wait_for(1, event_type="other", timeout=0.05)
    assert (await captured.next(timeout=2)).event_type == "thing.made"
    with pytest.raises(WaitTimeout, match=r"^no notification #2 "):
        await captured.next(timeout=0.05)
    with pytest.raises(TypeError):
        await captured_notifications(42)  # type: ignore[arg-type]


# -- the plugin as pytest runs it ---------------------------------------------------------

def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeini(INI)
    pytester.makepyfile(source)
    return pytester.runpytest_subprocess("-p", PLUGIN, "-p", "no:cacheprovider", *args)


BUSES = """
import pytest

seen = []

async def test_one(relaybus_bus):
    seen.append(relaybus_bus)
    assert not relaybus_bus.closed

async def test_two(relaybus_bus):
    seen.append(relaybus_bus)
    first, second = seen
    assert first.closed
    print("URLS", first.url.masked(), second.url.masked())
"""


def test_each_test_gets_a_fresh_memory_bus_closed_after_it(pytester: pytest.Pytester) -> None:
    result = _run(pytester, BUSES, "-s")
    result.assert_outcomes(passed=2)
    urls = re.search(r"URLS (\S+) (\S+)", result.stdout.str())
    assert urls is not None
    first, second = urls.groups()
    assert first.startswith("memory://relaybus-test-") and second.startswith("memory://")
    assert first != second


def test_the_bus_url_comes_from_the_command_line_or_the_ini_file(
        pytester: pytest.Pytester) -> None:
    source = BUSES.replace("first != second", "True")
    result = _run(pytester, source, "-s", "--relaybus-url", "memory://given")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*URLS memory://given/ memory://given/*"])
    pytester.makeini(INI + "relaybus_url = memory://from-ini\n")
    result = pytester.runpytest_subprocess("-p", PLUGIN, "-s")
    result.stdout.fnmatch_lines(["*URLS memory://from-ini/ memory://from-ini/*"])


def test_a_call_that_never_comes_fails_the_test_clearly(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        class Echo:
            async def echo(self, ctxt, text):
                return text

        async def test_waits(relaybus_bus, relaybus_spy):
            spy = relaybus_spy(Echo())
            await spy.next_call("echo", timeout=0.05)
    """)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*WaitTimeout: no call #1 to Echo.echo (0 calls so far) within 0.05 s*"])


def _docs_example() -> str:
    text = (ROOT / "docs" / "testing.md").read_text()
    example = text.split("## Example", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", example, re.DOTALL)
    assert len(blocks) == 1, "docs/testing.md has one example file under '## Example'"
    return str(blocks[0])


def test_the_example_in_the_docs_runs(pytester: pytest.Pytester) -> None:
    result = _run(pytester, _docs_example(), "-v")
    result.assert_outcomes(passed=2)


# -- registration -----------------------------------------------------------------------------

ENTRY_POINT = PLUGIN  # the name pytest registers the plugin under


def _installed_with_entry_point(tmp_path: Path, name: str) -> dict[str, str]:
    """An environment where a distribution declares ``name = relaybus.testing.pytest_plugin``
    under pytest11, as pip installs it."""
    dist = tmp_path / "site" / "relaybus_plugin_check-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: relaybus-plugin-check\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[pytest11]\n{name} = {PLUGIN}\n")
    path = os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


@pytest.mark.parametrize(("name", "works"), [(ENTRY_POINT, True), ("relaybus", False)])
def test_the_entry_point_named_after_the_module_lets_pytest_plugins_load_it_too(
        tmp_path: Path, name: str, works: bool) -> None:
    # pytest registers a plugin once per module object: an entry point under another name
    # makes `pytest_plugins = [...]` and `-p relaybus.testing.pytest_plugin` fail with
    # "Plugin already registered under a different name".
    (tmp_path / "test_it.py").write_text(
        f"pytest_plugins = [{PLUGIN!r}]\n\n"
        "def test_it(relaybus_spy):\n    assert relaybus_spy\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                          "--tb=line",
                          str(tmp_path / "test_it.py")], cwd=tmp_path, capture_output=True,
                         text=True, env=_installed_with_entry_point(tmp_path, name),
                         timeout=60, check=False)
    assert (run.returncode == 0) is works, run.stdout + run.stderr
    if not works:
        assert "already registered under a different name" in run.stdout + run.stderr


def test_the_project_declares_the_entry_point_under_the_module_name() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project.get("entry-points", {}).get("pytest11", {})
    for name, module in declared.items():
        if module == PLUGIN:
            assert name == ENTRY_POINT, (
                f"pytest11 entry point {name!r}: name it {ENTRY_POINT!r}, or test modules "
                f"with pytest_plugins = [{PLUGIN!r}] fail to load")


def test_spy_type_is_exported() -> None:
    assert isinstance(spy_on(Calc()), Spy)
