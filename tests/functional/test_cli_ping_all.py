"""``relaybus ping TOPIC --all`` on NATS: every relaybus server of the topic answers one
fanout ping, by name; nobody listening exits 4, as ``ping`` does."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_nats_support import BROKER, URL, unique_topic

from relaybus import Target
from relaybus.testing.behaviour import Compute
from relaybus.testing.brokers import require_broker
from relaybus.testing.buses import bus_factory

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.broker


def relaybus_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    return subprocess.run([sys.executable, "-m", "relaybus", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=env)


async def test_ping_all_on_nats(request: pytest.FixtureRequest) -> None:
    require_broker(*BROKER)
    topic = unique_topic(request, "pa")
    async with bus_factory(URL) as make_bus:
        one, two = await make_bus(), await make_bus()
        async with one.rpc_server(Target(topic=topic, server="n1"), [Compute()], ping=True), \
                two.rpc_server(Target(topic=topic, server="n2"), [Compute()], ping=True):
            text = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--all", "--url", URL)
            as_json = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--all", "--url",
                                              URL, "--json", "--wait", "0.5")
    assert text.returncode == 0, text.stderr
    *lines, summary = text.stdout.splitlines()
    assert summary == "2 answered within 1 s"
    assert sorted(line.split(" ", 1)[0] for line in lines) == [f"{topic}.n1", f"{topic}.n2"]
    pid = os.getpid()
    assert all(f"(pid {pid} on " in line and " pong in " in line for line in lines)
    assert as_json.returncode == 0, as_json.stderr
    answers = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert sorted((a["server"], a["pid"], a["ok"]) for a in answers) == \
        [("n1", pid, True), ("n2", pid, True)]

    nobody = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--all", "--url", URL)
    assert nobody.returncode == 4 and nobody.stdout == ""
    assert nobody.stderr.startswith(f"{topic} (all servers): MessageUndeliverable: ")
    assert nobody.stderr.count("\n") == 1
