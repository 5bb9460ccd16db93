"""The operating commands as subprocesses on memory://: exit codes, config, serve, bench."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import relaybus
from relaybus.cli.common import exit_code_for

ROOT = Path(__file__).resolve().parents[2]


def relaybus_cmd(*args: str, env: dict[str, str] | None = None,
                 cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "relaybus", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd, env=environment)


@pytest.mark.parametrize("args, code, text", [
    (["call", "nobody_topic", "echo", "value=1"], 4, "MessageUndeliverable"),
    (["cast", "nobody_topic", "echo"], 4, "MessageUndeliverable"),
    (["call", "t", "echo", "--args", "{not json"], 2, "--args is not valid JSON"),
    (["call", "t", "echo", "--args", "[1]"], 2, "must be a JSON object"),
    (["call", "t", "echo", "no-equals-sign"], 2, "is not key=value"),
    (["call", "t", "echo", "--url", "kafka://x"], 2, "no transport is installed"),
    (["call", "t", "echo", "--url", "nonsense"], 2, "expected 'scheme://"),
    (["call", "bad topic", "echo"], 2, "whitespace"),
    (["call", "t", "echo", "--timeout", "-1"], 2, "timeout"),
    (["notify", "e.x", "--payload", "{oops"], 2, "--payload is not valid JSON"),
    (["notify", "compute.instance.create.end", "--service", "examples.compute.service:compute",
      "--payload", '{"instance_id": "52", "host": "h"}'], 2,
     ("InvalidPayload: compute.instance.create.end payload: Expected `int`, got `str` "
      "(at $.instance_id)")),
    (["notify", "e.x", "--service", "examples.compute.service:ComputeAPI"], 2,
     "is not a relaybus.Service"),
    (["notify", "e.x", "--service", "no_such_module:x"], 2, "cannot import module"),
    (["call", "t", "echo", "--no-such-flag"], 2, "No such option"),
])
def test_bad_input_and_nobody_listening_give_one_line_and_an_exit_code(
        args: list[str], code: int, text: str) -> None:
    result = relaybus_cmd(*args)
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert text in result.stderr
    if "No such option" not in text:
        assert len(lines) == 1, result.stderr


def test_json_errors_for_scripts() -> None:
    result = relaybus_cmd("call", "nobody_topic", "echo", "--json")
    assert result.returncode == 4
    assert json.loads(result.stdout)["error"]["type"] == "MessageUndeliverable"


def test_notify_on_memory_succeeds() -> None:
    result = relaybus_cmd("notify", "compute.instance.create.end", "--payload", '{"id": 1}',
                          "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == "sent" and len(answer["message_id"]) >= 32  # a sender finds it


def test_notify_for_a_service_sends_its_declared_payload_under_its_name() -> None:
    result = relaybus_cmd("notify", "compute.instance.create.end", "--service",
                          "examples.compute.service:compute", "--payload",
                          '{"instance_id": 52, "host": "h"}', "--url", "memory://",
                          "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "sent"


@pytest.mark.parametrize("exc, code", [
    (relaybus.MessagingTimeout("t"), 3),
    (relaybus.MessageUndeliverable("x"), 4),
    (relaybus.ConnectionFailure("down"), 5),
    (relaybus.RemoteError("KeyError", "k"), 1),
    (relaybus.NoSuchMethod("m"), 1),
    (ValueError("bad"), 2),
])
def test_exit_codes(exc: BaseException, code: int) -> None:
    assert exit_code_for(exc) == code


def test_a_rebuilt_remote_builtin_counts_as_a_remote_error() -> None:
    from relaybus.rpc.remote_errors import deserialize_exception

    remote = deserialize_exception({"class": "ValueError", "module": "builtins",
                                    "message": "m", "args": ["m"], "tb": ["x"]})
    assert exit_code_for(remote) == 1


def test_config_precedence_and_masking(tmp_path: Path) -> None:
    (tmp_path / "relaybus.toml").write_text(
        '[relaybus]\nurl = "rabbit://user:s3cret@filehost:5672/"\ntimeout = 5\n'
        'workers = 8\n')
    result = relaybus_cmd("config", "show", "--json", cwd=tmp_path,
                          env={"RELAYBUS_TIMEOUT": "7", "PYTHONPATH": str(ROOT / "src")})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["settings"]["url"] == "rabbit://user:****@filehost:5672/"
    assert "s3cret" not in result.stdout
    assert shown["settings"]["timeout"] == 7.0 and shown["sources"]["timeout"] == \
        "$RELAYBUS_TIMEOUT"
    assert shown["settings"]["workers"] == 8 and shown["sources"]["workers"].endswith(
        "relaybus.toml")
    assert shown["sources"]["drain_timeout"] == "default"
    readable = relaybus_cmd("config", "show", cwd=tmp_path)
    assert "filehost" in readable.stdout and "s3cret" not in readable.stdout


@pytest.mark.parametrize("content, text", [
    ("url = [", "not valid TOML"),
    ("colour = 'red'", "unknown setting(s) colour"),
    ("workers = 0", "workers from"),
])
def test_bad_config_files(tmp_path: Path, content: str, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    result = relaybus_cmd("--config", str(path), "config", "show")
    assert result.returncode == 2 and text in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_starts_exposes_metrics_and_exits_0_on_a_signal(sig: signal.Signals) -> None:
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    with subprocess.Popen(
            [sys.executable, "-m", "relaybus", "serve", "examples.compute.service:compute",
             "--server", "h1", "--metrics-port", str(port), "--log-format", "json"],
            cwd=ROOT, env=environment, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            ready = process.stderr.readline()
            assert ready.startswith("ready: compute on compute.h1"), ready
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
                metrics = page.read().decode()
            assert "relaybus_rpc_requests_handled_total" in metrics
            process.send_signal(sig)
            assert process.wait(timeout=30) == 0
            logged = [json.loads(line) for line in process.stderr.read().splitlines() if line]
            assert [entry["message"] for entry in logged][-1] == "stopped"
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize("args, text", [
    (["examples.compute.service:nothing"], "has no attribute 'nothing'"),
    (["examples.compute.service:ComputeAPI"], "needs --topic"),
    (["no.such.module:x"], "cannot import module"),
])
def test_serve_bad_references(args: list[str], text: str) -> None:
    result = relaybus_cmd("serve", *args)
    assert result.returncode == 2 and text in result.stderr


def test_bench_runs_with_json_output() -> None:
    result = relaybus_cmd("bench", "--scale", "0.01", "--rounds", "1", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)["figures"]
    assert figures["sequential calls_s"] > 0 and figures["notifications msgs_s"] > 0


async def test_log_lines_carry_message_ids_in_json(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from relaybus import Target
    from relaybus.cli.logs import JsonFormatter
    from relaybus.testing.behaviour import Compute

    async with await relaybus.connect("memory://logs") as bus:
        async with bus.rpc_server(Target(topic="logged", server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic="logged"), timeout=10)
            with caplog.at_level(logging.WARNING, logger="relaybus"):
                await client.cast({}, "fail_builtin", text="boom")
                await client.call({}, "echo", value=1)
    (record,) = [r for r in caplog.records if "failed" in r.getMessage()]
    entry = json.loads(JsonFormatter().format(record))
    assert entry["method"] == "fail_builtin" and entry["topic"] == "logged"
    assert len(entry["unique_id"]) == 32 and entry["level"] == "warning"


def test_every_setting_has_a_value_even_when_its_default_is_none() -> None:
    from relaybus.cli.settings import SETTINGS, resolve

    settings = resolve({}, environ={})
    assert set(settings.values) == set(SETTINGS) and settings.metrics_port is None
