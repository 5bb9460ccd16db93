"""The operating commands as separate processes on a real RabbitMQ.

serve in one process; call, cast, notify, conformance from others; a graceful shutdown
under load that loses no request.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import relaybus
from relaybus import Target
from relaybus.testing.behaviour import Recorder
from relaybus.testing.brokers import require_broker

ROOT = Path(__file__).resolve().parents[2]
URL = "rabbit://guest:guest@127.0.0.1:5672/"

pytestmark = pytest.mark.broker


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    env["RELAYBUS_URL"] = URL
    return env


def relaybus_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relaybus", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=_env())


class Served:
    """A ``relaybus serve`` process, ready when its 'ready:' line has been read."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "relaybus", "serve", *args],
                                        cwd=ROOT, env=_env(), stderr=subprocess.PIPE,
                                        text=True)
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        assert line.startswith("ready:"), line + self.process.stderr.read()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=60)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    require_broker("RabbitMQ", "127.0.0.1", 5672)
    return f"cli_{request.node.name[:30]}_{uuid.uuid4().hex[:8]}".replace("[", "_").replace(
        "]", "_")


@pytest.fixture
def server(topic: str) -> Iterator[Served]:
    served = Served("examples.compute.service:compute", "--topic", topic, "--server", "h1")
    try:
        yield served
    finally:
        served.kill()


def test_call_cast_and_exit_codes_across_processes(server: Served, topic: str) -> None:
    called = relaybus_cmd("call", topic, "run_instance", "instance_id=52", "--namespace",
                          "compute", "--json")
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["result"]["instance_id"] == 52
    cast = relaybus_cmd("cast", topic, "run_instance", "--args", '{"instance_id": 53}',
                        "--namespace", "compute", "--server", "h1")
    assert cast.returncode == 0, cast.stderr
    fetched = relaybus_cmd("call", topic, "get_instance", "instance_id=53", "--namespace",
                           "compute", "--server", "h1", "--json")
    assert json.loads(fetched.stdout)["result"]["instance_id"] == 53
    missing = relaybus_cmd("call", topic, "get_instance", "instance_id=999", "--namespace",
                           "compute")
    assert missing.returncode == 1 and "error: KeyError" in missing.stderr
    slow = relaybus_cmd("call", topic, "slow_operation", "seconds=3", "--namespace", "compute",
                        "--timeout", "0.5")
    assert slow.returncode == 3 and "MessagingTimeout" in slow.stderr
    invalid = relaybus_cmd("call", topic, "run_instance", "instance_id=abc", "--namespace",
                           "compute")
    assert invalid.returncode == 1 and "InvalidArguments" in invalid.stderr
    nobody = relaybus_cmd("call", f"{topic}_nobody", "run_instance", "instance_id=1")
    assert nobody.returncode == 4
    assert server.stop() == 0


async def test_notify_reaches_a_listener_in_another_process(topic: str) -> None:
    recorder = Recorder()

    class Listener:
        async def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                        metadata: Any) -> None:
            recorder.add((publisher_id, event_type, payload))

    async with await relaybus.connect(URL) as bus:
        async with bus.notification_listener([Target(topic=topic)], [Listener()],
                                             pool="cli-test"):
            result = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "relaybus", "notify", "disk.full", "--payload",
                '{"pct": 99}', "--priority", "error", "--topic", topic, "--publisher-id",
                "storage.h1", cwd=ROOT, env=_env(), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            _, stderr = await result.communicate()
            assert result.returncode == 0, stderr
            assert await recorder.wait_for(1) == [("storage.h1", "disk.full", {"pct": 99})]


async def test_graceful_shutdown_under_load_loses_no_request(topic: str) -> None:
    first = Served("examples.compute.service:compute", "--topic", topic, "--server", "h1")
    second = Served("examples.compute.service:compute", "--topic", topic, "--server", "h2")
    try:
        async with await relaybus.connect(URL) as bus:
            client = bus.rpc_client(Target(topic=topic, namespace="compute"), timeout=30)
            calls = [asyncio.ensure_future(client.call({}, "slow_operation", seconds=0.2))
                     for _ in range(60)]
            # once one call finished, all of them were delivered: stop a server mid-load
            await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
            code = await asyncio.to_thread(first.stop)
            results = await asyncio.gather(*calls, return_exceptions=True)
        assert code == 0
        assert [r for r in results if r != "done after 0.2s"] == []
    finally:
        first.kill()
        second.stop()


def test_conformance_kit_against_the_reference_server_in_another_process(topic: str) -> None:
    with subprocess.Popen([sys.executable, "-m", "relaybus", "conformance", "--serve",
                           "--topic", topic, "--server", "ref1"], cwd=ROOT, env=_env(),
                          stderr=subprocess.PIPE, text=True) as reference:
        try:
            assert reference.stderr is not None
            assert "serving the conformance contract" in reference.stderr.readline()
            result = relaybus_cmd("conformance", "--topic", topic)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "9 passed, 0 failed" in result.stdout
        finally:
            reference.send_signal(signal.SIGTERM)
            assert reference.wait(timeout=30) == 0


def test_tap_watches_a_topic_without_taking_its_messages(server: Served, topic: str) -> None:
    with subprocess.Popen([sys.executable, "-m", "relaybus", "tap", topic, "--count", "3",
                           "--json"], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as tapping:
        try:
            assert tapping.stderr is not None and tapping.stdout is not None
            assert tapping.stderr.readline().startswith("tapping")
            called = relaybus_cmd("call", topic, "run_instance", "instance_id=7",
                                  "--namespace", "compute", "--json")
            assert called.returncode == 0, called.stderr  # the server still got its call
            assert relaybus_cmd("cast", topic, "run_instance", "instance_id=8", "--namespace",
                                "compute", "--fanout").returncode == 0
            assert relaybus_cmd("notify", "tapped.event", "--topic", topic).returncode == 0
            assert tapping.wait(timeout=30) == 0
            seen = [json.loads(line) for line in tapping.stdout.read().splitlines()]
        finally:
            if tapping.poll() is None:
                tapping.kill()
    assert [(s["kind"], s.get("method") or s.get("event_type")) for s in seen] == [
        ("call", "run_instance"), ("cast", "run_instance"), ("notification", "tapped.event")]
    assert seen[0]["args"] == {"instance_id": 7}
    counted = relaybus_cmd("call", topic, "count_received", "--namespace", "compute", "--json")
    assert json.loads(counted.stdout)["result"] == 2  # the call and the fanout cast
