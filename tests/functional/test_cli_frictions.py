"""A newcomer's first hour (issue 17): each friction, run as a separate process.

The README's firehose filter on a default setup, a forgotten namespace, a busy metrics port,
exit codes of docs/firehose/demo, conformance with nobody listening, timeout figures, a
wrong password, a NATS URL at a port that is not NATS. Processes talk through a ``relaybus
broker`` of this module's own (its own state directory and port; stopped at the end), or the
shared RabbitMQ where a test says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaybus.cli.localbroker import alive

ROOT = Path(__file__).resolve().parents[2]
RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"

pytestmark = pytest.mark.broker


class Env:
    """An environment whose commands use one ``relaybus broker``."""

    def __init__(self, state: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
        self.env["XDG_STATE_HOME"] = str(state)

    def cmd(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "relaybus", *args], capture_output=True,
                              text=True, timeout=60, cwd=ROOT, env=dict(self.env, **extra))

    def popen(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "relaybus", *args], cwd=ROOT,
                                env=dict(self.env, **extra), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    env = Env(tmp_path_factory.mktemp("state"))
    started = env.cmd("broker", "start")
    assert started.returncode == 0, started.stderr
    status = json.loads(env.cmd("broker", "status", "--json").stdout)
    try:
        yield env
    finally:
        env.cmd("broker", "stop")
        if alive(status["pid"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(status["pid"], signal.SIGKILL)


@contextlib.contextmanager
def running(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_line(text: str) -> str:
    assert text.count("\n") == 1, text
    return text


def _served(env: Env, *args: str, **extra: str) -> subprocess.Popen[str]:
    process = env.popen("serve", *args, **extra)
    assert process.stderr is not None
    line = process.stderr.readline()
    assert line.startswith("ready:"), line + process.stderr.read()
    return process


def test_the_readme_filter_matches_a_default_setup(local: Env) -> None:
    port = _free_port()
    with running(local.popen("firehose", "--http", f"127.0.0.1:{port}")) as firehose:
        assert firehose.stdout is not None and firehose.stderr is not None
        ready = firehose.stdout.readline()
        assert ready.startswith("relaybus firehose: console"), ready + firehose.stderr.read()
        with running(local.popen("listen", "openstack/#", "--gateway",
                                 f"http://127.0.0.1:{port}", "--count", "1",
                                 "--json")) as listen:
            assert listen.stderr is not None and listen.stdout is not None
            assert "listening to" in listen.stderr.readline()
            sent = local.cmd("notify", "compute.instance.create.end", "--payload",
                             '{"instance_id": 52}', "--publisher-id", "compute.host1")
            assert sent.returncode == 0, sent.stderr
            event = json.loads(listen.stdout.readline())
            assert listen.wait(timeout=30) == 0
    assert event["firehosetopic"] == \
        "openstack/compute.host1/compute/instance/create/end"
    readme = (ROOT / "README.md").read_text()
    assert "relaybus listen 'openstack/#'" in readme
    assert "relaybus listen 'nova/#'" not in readme


def test_a_forgotten_or_wrong_namespace_says_which(local: Env) -> None:
    with running(_served(local, "examples.compute.service:compute", "--server", "h1")):
        forgot = local.cmd("call", "compute", "run_instance", "instance_id=1")
        assert forgot.returncode == 1
        line = _one_line(forgot.stderr)
        assert "version 1.0" in line and "None." not in line
        assert "no endpoint in namespace None" in line and "--namespace" in line
        wrong = local.cmd("call", "compute", "run_instance", "instance_id=1",
                          "--namespace", "computer")
        assert wrong.returncode == 1
        assert "no endpoint in namespace 'computer'" in _one_line(wrong.stderr)
        version = local.cmd("call", "compute", "run_instance", "instance_id=1",
                            "--namespace", "compute", "--version", "9.0")
        assert version.returncode == 1
        line = _one_line(version.stderr)
        assert "RPC version 9.0" in line and "namespace" not in line
        right = local.cmd("call", "compute", "run_instance", "instance_id=1",
                          "--namespace", "compute")
        assert right.returncode == 0, right.stderr


def test_a_busy_metrics_port_is_one_line(local: Env) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = local.cmd("serve", "examples.compute.service:compute", "--metrics-port",
                           str(port))
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert f"--metrics-port {port}" in line and "Traceback" not in line


@pytest.mark.parametrize("args, code, text", [
    (["docs", "no.such.module:x"], 2, "cannot import module"),
    (["docs", "examples.compute.service:compute", "-o", "/nonexistent/dir/x.yaml"], 2,
     "cannot write"),
    (["firehose", "--http", "nowhere"], 2, "expected host:port"),
    (["firehose", "--url", "nats://127.0.0.1:1", "--http", "127.0.0.1:0"], 5,
     "ConnectionFailure"),
    (["demo", "--url", "nats://127.0.0.1:1"], 5, "ConnectionFailure"),
    (["demo", "--url", "bogus://x"], 2, "bogus"),
])
def test_docs_firehose_and_demo_exit_codes(local: Env, args: list[str], code: int,
                                           text: str) -> None:
    result = local.cmd(*args)
    assert result.returncode == code, result.stderr
    assert text in _one_line(result.stderr) and "Traceback" not in result.stderr


def test_a_busy_firehose_port_is_bad_input(local: Env) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = local.cmd("firehose", "--http", f"127.0.0.1:{taken.getsockname()[1]}")
    assert result.returncode == 2, result.stderr
    assert "cannot start the gateway" in _one_line(result.stderr)


def test_conformance_with_nobody_listening_is_one_line(local: Env) -> None:
    result = local.cmd("conformance", "--topic", f"nobody_{uuid.uuid4().hex[:8]}")
    assert result.returncode == 4
    assert result.stdout == ""
    assert "nobody is listening" in _one_line(result.stderr)
    assert "--serve" in result.stderr


@pytest.mark.parametrize("url", ["local", RABBIT])
def test_a_timeout_says_round_seconds(local: Env, url: str) -> None:
    topic = f"slow_{uuid.uuid4().hex[:8]}"
    flags = [] if url == "local" else ["--url", url]
    with running(local.popen("conformance", "--serve", "--topic", topic, *flags)) as server:
        assert server.stderr is not None
        assert "serving the conformance contract" in server.stderr.readline()
        result = local.cmd("call", topic, "slow", "seconds=5", "--namespace", "conformance",
                           "--timeout", "1", *flags)
    assert result.returncode == 3, result.stderr
    line = _one_line(result.stderr)
    assert "Timed out after 1 s" in line, line


def test_a_wrong_rabbit_password_is_one_line(local: Env) -> None:
    result = local.cmd("call", "compute", "run_instance", "--url",
                       "rabbit://guest:wrong@127.0.0.1:5672/")
    assert result.returncode == 5
    assert "AuthenticationFailure" in _one_line(result.stderr)


def test_a_wrong_nats_password_is_one_line(tmp_path: Path) -> None:
    port = _free_port()
    binary = Path(sys.executable).parent / "nats-server"
    with running(subprocess.Popen(
            [str(binary), "--addr", "127.0.0.1", "--port", str(port), "--user", "me",
             "--pass", "right", "--jetstream", "--store_dir", str(tmp_path / "js")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)) as server:
        assert server.stderr is not None
        for line in server.stderr:  # nats-server says when it is ready
            if "Server is ready" in line:
                break
        env = Env(tmp_path)
        result = env.cmd("notify", "x.y", "--payload", "{}", "--url",
                         f"nats://me:wrong@127.0.0.1:{port}")
        right = env.cmd("notify", "x.y", "--payload", "{}", "--url",
                        f"nats://me:right@127.0.0.1:{port}")
    assert result.returncode == 5
    assert "AuthenticationFailure" in _one_line(result.stderr)
    assert right.returncode == 0, right.stderr


@contextlib.contextmanager
def _not_nats(kind: str) -> Iterator[str]:
    """host:port of a service that is not NATS: RabbitMQ, a silent port, a chatty one."""
    if kind == "rabbitmq":
        yield "127.0.0.1:5672"
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # the kernel accepts connections; nobody answers them
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        if kind == "silent":
            yield address
            return
        done = threading.Event()

        def greet() -> None:  # what an SSH server says first
            while not done.is_set():
                with contextlib.suppress(OSError):
                    conn, _ = sock.accept()
                    with conn:
                        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        sock.settimeout(0.2)
        thread = threading.Thread(target=greet, daemon=True)
        thread.start()
        try:
            yield address
        finally:
            done.set()
            thread.join()


@pytest.mark.parametrize("kind, reason", [
    ("rabbitmq", "(no INFO within 2 s)"),
    ("silent", "(no INFO within 2 s)"),
    ("chatty", "(it sent b'SSH-2.0-OpenSSH_9.6', not INFO)"),
])
def test_a_nats_url_at_a_port_that_is_not_nats_fails_fast(tmp_path: Path, kind: str,
                                                          reason: str) -> None:
    with _not_nats(kind) as address:
        started = time.monotonic()
        result = Env(tmp_path).cmd("notify", "x.y", "--payload", "{}", "--url",
                                   f"nats://{address}")
        took = time.monotonic() - started
    assert result.returncode == 5, result.stderr
    line = _one_line(result.stderr)
    assert f"{address} did not answer as a NATS server {reason}" in line, line
    # nats-py alone waits connect_timeout (5 s) per attempt, twice: 10.5 s and no reason
    assert took < 8, took
