"""``relaybus broker``: a local nats-server in one command, found by the other commands.

Each test has a state directory of its own (``XDG_STATE_HOME``) and stops the broker it
started; none touches the shared NATS on 4222.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaybus.cli.localbroker import alive

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.broker


class Broker:
    """The environment of one test's ``relaybus broker``; ``cmd`` runs a relaybus command."""

    def __init__(self, state: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
        self.env["XDG_STATE_HOME"] = str(state)
        self.state_file = state / "relaybus" / "broker" / "state.json"

    def cmd(self, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "relaybus", *args], capture_output=True,
                              text=True, timeout=60, cwd=cwd, env=self.env)

    def pid(self) -> int | None:
        try:
            return int(json.loads(self.state_file.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    local = Broker(tmp_path / "state")
    try:
        yield local
    finally:
        pid = local.pid()
        local.cmd("broker", "stop")
        if pid is not None and alive(pid):  # whatever stop left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_start_status_stop(broker: Broker) -> None:
    status = broker.cmd("broker", "status")
    assert status.returncode == 1 and "not running" in status.stdout
    started = broker.cmd("broker", "start")
    assert started.returncode == 0, started.stderr
    assert "started on nats://127.0.0.1:" in started.stdout
    running = broker.cmd("broker", "status", "--json")
    assert running.returncode == 0
    state = json.loads(running.stdout)
    assert state["running"] and state["url"].startswith("nats://127.0.0.1:")
    assert state["url"] != "nats://127.0.0.1:4222"
    assert Path(state["data_dir"]).is_dir() and Path(state["data_dir"]).is_relative_to(
        broker.state_file.parent)
    # the default URL is now the broker's, and config show says where it came from
    shown = json.loads(broker.cmd("config", "show", "--json").stdout)
    assert shown["settings"]["url"] == state["url"]
    assert shown["sources"]["url"] == "relaybus broker"
    # a flag and $RELAYBUS_URL still win
    assert json.loads(broker.cmd("--config", os.devnull, "config", "show", "--json")
                      .stdout)["settings"]["url"] == state["url"]
    broker.env["RELAYBUS_URL"] = "memory://"
    assert json.loads(broker.cmd("config", "show", "--json").stdout)["settings"]["url"] \
        == "memory://"
    del broker.env["RELAYBUS_URL"]
    stopped = broker.cmd("broker", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not alive(state["pid"])  # gone, or a zombie left for init to reap
    after = broker.cmd("broker", "status")
    assert after.returncode == 1 and "not running" in after.stdout
    assert json.loads(broker.cmd("config", "show", "--json").stdout)["settings"]["url"] \
        == "memory://"
    again = broker.cmd("broker", "stop")
    assert again.returncode == 0 and "not running" in again.stdout


def test_the_readme_cli_block_works_in_two_terminals(broker: Broker) -> None:
    assert broker.cmd("broker", "start").returncode == 0
    serve = subprocess.Popen([sys.executable, "-m", "relaybus", "serve",
                              "examples.compute.service:compute", "--server", "host1"],
                             cwd=ROOT, env=broker.env, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stderr is not None
        ready = serve.stderr.readline()
        assert ready.startswith("ready: compute on compute.host1"), ready
        called = broker.cmd("call", "compute", "run_instance", "instance_id=52",
                            "--namespace", "compute", "--json")
        assert called.returncode == 0, called.stderr
        assert json.loads(called.stdout)["result"]["instance_id"] == 52
        cast = broker.cmd("cast", "compute", "run_instance", "--args", '{"instance_id": 53}',
                          "--namespace", "compute", "--fanout")
        assert cast.returncode == 0, cast.stderr
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        assert "memory://" not in serve.stderr.read()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        if serve.stderr is not None:
            serve.stderr.close()


def test_serve_on_memory_says_no_other_process_can_reach_it(broker: Broker) -> None:
    serve = subprocess.Popen([sys.executable, "-m", "relaybus", "serve",
                              "examples.compute.service:compute", "--server", "host1"],
                             cwd=ROOT, env=broker.env, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stderr is not None
        assert serve.stderr.readline().startswith("ready:")
        note = serve.stderr.readline()
        assert "memory://" in note and "no other process can reach it" in note
        assert "relaybus broker start" in note
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        if serve.stderr is not None:
            serve.stderr.close()
    # and a call that finds nobody on memory:// says why
    called = broker.cmd("call", "compute", "run_instance", "instance_id=1")
    assert called.returncode == 4
    assert called.stderr.count("\n") == 1 and "relaybus broker start" in called.stderr


def test_a_second_start_says_one_runs(broker: Broker) -> None:
    assert broker.cmd("broker", "start").returncode == 0
    url = json.loads(broker.cmd("broker", "status", "--json").stdout)["url"]
    again = broker.cmd("broker", "start")
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and f"already running on {url}" in again.stderr


def test_a_busy_port_is_one_line(broker: Broker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = broker.cmd("broker", "start", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"port {port}" in result.stderr
    assert "busy" in result.stderr and broker.pid() is None


def test_a_configured_port_is_used(broker: Broker) -> None:
    port = _free_port()
    broker.env["RELAYBUS_BROKER_PORT"] = str(port)
    started = broker.cmd("broker", "start")
    assert started.returncode == 0, started.stderr
    assert f"nats://127.0.0.1:{port}" in started.stdout


def test_without_the_extra_one_line_exit_2(broker: Broker, tmp_path: Path) -> None:
    # a Python whose bin/ has no nats-server, and a PATH without one
    bare = tmp_path / "bare" / "bin"
    bare.mkdir(parents=True)
    (bare / "python").symlink_to(os.path.realpath(sys.executable))
    site = next(p for p in sys.path if p.endswith("site-packages"))
    env = dict(broker.env, PATH=str(bare), PYTHONPATH=os.pathsep.join([str(ROOT / "src"), site]))
    result = subprocess.run([str(bare / "python"), "-m", "relaybus", "broker", "start"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "relaybus[broker]" in result.stderr


def test_run_in_the_foreground_until_sigterm(broker: Broker) -> None:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "relaybus", "broker", "run", "--port",
                                str(port)], cwd=ROOT, env=broker.env, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        while line and not line.startswith("relaybus broker:"):  # nats-server's own log
            line = process.stderr.readline()
        assert f"nats://127.0.0.1:{port}" in line
        status = broker.cmd("broker", "status")
        assert status.returncode == 0 and f":{port}" in status.stdout
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert broker.cmd("broker", "status").returncode == 1
        assert not broker.state_file.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
