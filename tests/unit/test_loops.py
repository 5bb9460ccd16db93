"""relaybus.loops: uvloop where installed, asyncio's loop when asked, a clear line otherwise.

The dev extra installs uvloop, so "installed" is this interpreter; "not installed" is a fresh
interpreter where ``import uvloop`` fails (``sys.modules['uvloop'] = None``, Python's own
way to make an import raise ImportError).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import pytest
import uvloop

from relaybus import loops

HIDE_UVLOOP = "import sys; sys.modules['uvloop'] = None\n"

SYNC_SCRIPT = textwrap.dedent("""
    import asyncio

    import relaybus.sync
    from relaybus import Target


    class Where:
        async def loop(self, ctxt):
            return type(asyncio.get_running_loop()).__module__


    with relaybus.sync.connect("memory://") as bus:
        with bus.rpc_server(Target(topic="where", server="s1"), [Where()]):
            print(bus.rpc_client(Target(topic="where"), timeout=10).call({}, "loop"))
""")

CLI = "from relaybus.cli.main import main; main()\n"


def _python(code: str, *args: str, loop: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    if loop is not None:
        env[loops.ENV] = loop
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60, env=env)


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_auto_runs_on_uvloop_where_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loops.ENV, raising=False)
    chosen = loops.choose()
    assert (chosen.name, chosen.setting) == ("uvloop", "auto")
    assert chosen.describe() == f"uvloop {chosen.version} ({loops.ENV}=auto)"
    assert isinstance(loops.run(_running_loop()), uvloop.Loop)
    made = loops.new_event_loop()
    try:
        assert isinstance(made, uvloop.Loop)
    finally:
        made.close()


def test_asyncio_is_chosen_when_asked_even_with_uvloop_installed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loops.ENV, "asyncio")
    assert (loops.choose().name, loops.choose().version) == ("asyncio", None)
    ran = loops.run(_running_loop())
    assert isinstance(ran, asyncio.BaseEventLoop) and not isinstance(ran, uvloop.Loop)


def test_uvloop_when_asked_and_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loops.ENV, " UVLoop ")
    assert isinstance(loops.run(_running_loop()), uvloop.Loop)


def test_an_unknown_setting_names_the_choices_and_leaves_no_coroutine_unawaited(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loops.ENV, "fast")
    coro = _running_loop()
    with pytest.raises(loops.LoopUnavailable, match="must be one of auto, asyncio, uvloop"):
        loops.run(coro)
    assert coro.cr_frame is None  # closed: no "never awaited" warning


@pytest.mark.parametrize("setting, module", [(None, "uvloop"), ("asyncio", "asyncio")])
def test_relaybus_sync_runs_on_the_chosen_loop(setting: str | None, module: str) -> None:
    # relaybus.sync's background loop is the oslo.messaging drop-in's loop too
    result = _python(SYNC_SCRIPT, loop=setting)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split(".")[0] == module


def test_without_uvloop_auto_falls_back_to_asyncio() -> None:
    result = _python(HIDE_UVLOOP + SYNC_SCRIPT, loop=None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "asyncio.unix_events"
    shown = _python(HIDE_UVLOOP + CLI, "config", "show", "--json", loop=None)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["loop"] == {"name": "asyncio", "version": None,
                                                "setting": "auto"}


def test_asking_for_uvloop_without_it_is_one_line_not_a_traceback() -> None:
    for command in (["config", "show"], ["call", "t", "echo"], ["serve", "x:y"]):
        result = _python(HIDE_UVLOOP + CLI, *command, loop="uvloop")
        assert result.returncode == 2
        assert result.stderr == ("error: RELAYBUS_LOOP=uvloop, but uvloop is not installed: "
                                 "pip install 'relaybus[uvloop]', or unset it\n")
    library = _python(HIDE_UVLOOP + SYNC_SCRIPT, loop="uvloop")
    assert library.returncode == 1
    assert ("relaybus.loops.LoopUnavailable: RELAYBUS_LOOP=uvloop, but uvloop is not "
            "installed" in library.stderr)


@pytest.mark.parametrize("setting, name", [(None, "uvloop"), ("asyncio", "asyncio")])
def test_config_show_and_bench_say_which_loop_runs(setting: str | None, name: str) -> None:
    shown = _python(CLI, "config", "show", loop=setting)
    assert shown.returncode == 0, shown.stderr
    assert f"{loops.ENV}={setting or 'auto'}" in shown.stdout and name in shown.stdout
    bench = _python(CLI, "bench", "--scale", "0.005", "--rounds", "1", "--json", loop=setting)
    assert bench.returncode == 0, bench.stderr
    assert json.loads(bench.stdout)["loop"] == name
