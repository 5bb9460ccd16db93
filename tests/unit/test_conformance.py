"""The conformance kit passes the reference server and catches a server that strays."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import relaybus
from relaybus import Target
from relaybus.contracts.conformance import (
    ConformanceEndpoint,
    events_topic,
    reference_server,
    run_checks,
)

CHECKS = ["echo", "directed call", "cast", "fanout cast", "version negotiation",
          "NoSuchMethod", "remote error", "call-monitor heartbeats", "notification"]


async def test_reference_server_passes_every_check() -> None:
    async with await relaybus.connect("memory://conformance") as bus:
        async with reference_server(bus, "conf", "ref1"):
            results = await run_checks(bus, "conf")
    assert [r.name for r in results] == CHECKS
    assert [r for r in results if not r.passed] == []


class Straying(ConformanceEndpoint):
    """Raises the wrong exception and never emits."""

    target = Target(namespace="conformance", version="1.3")  # accepts too much

    async def fail(self, ctxt: Any, message: str) -> None:
        raise KeyError(message)

    async def emit(self, ctxt: Any, event_type: str, payload: Any) -> None:
        return None


async def test_a_straying_server_fails_the_right_checks(monkeypatch: Any) -> None:
    monkeypatch.setattr("relaybus.contracts.conformance.WAIT", 0.5)
    async with await relaybus.connect("memory://conformance-bad") as bus:
        notifier = bus.notifier("conformance.bad", topics=[events_topic("bad")])
        server = bus.rpc_server(Target(topic="bad", server="bad1"),
                                [Straying("bad1", notifier)])
        async with server:
            results = await run_checks(bus, "bad")
    failed = {r.name for r in results if not r.passed}
    assert failed == {"version negotiation", "remote error", "notification"}


def test_command_reports_and_exits_non_zero_when_nobody_serves() -> None:
    result = subprocess.run([sys.executable, "-m", "relaybus", "conformance", "--url",
                             "memory://", "--topic", "nobody_here"], capture_output=True,
                            text=True, timeout=120)
    # one line saying so, not one FAIL per check (issue 17)
    assert result.returncode == 4
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "MessageUndeliverable" in result.stderr and "nobody is listening" in result.stderr
