"""relaybus.health: the probe server answers from its thread, checks run on the loop."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

import relaybus
from relaybus import Target
from relaybus.health import HealthServer
from relaybus.testing.behaviour import Compute


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_checks_answer_ok_or_say_why() -> None:
    reasons: dict[str, str | None] = {"ready": "broker connection lost"}

    def broken() -> str | None:
        raise KeyError("oops")

    health = HealthServer(asyncio.get_running_loop(),
                          {"/livez": lambda: None, "/readyz": lambda: reasons["ready"],
                           "/broken": broken})
    health.start()
    try:
        assert await asyncio.to_thread(get, health.port, "/livez") == (200, {"status": "ok"})
        assert await asyncio.to_thread(get, health.port, "/readyz") == \
            (503, {"status": "fail", "reason": "broker connection lost"})
        reasons["ready"] = None
        assert await asyncio.to_thread(get, health.port, "/readyz?verbose") == \
            (200, {"status": "ok"})
        status, body = await asyncio.to_thread(get, health.port, "/broken")
        assert status == 503 and body["reason"] == "the check failed: KeyError: 'oops'"
        status, body = await asyncio.to_thread(get, health.port, "/nope")
        assert status == 404 and "/livez, /readyz" in body["reason"]
    finally:
        await asyncio.to_thread(health.close)


async def test_a_blocked_loop_fails_the_probe_with_the_reason() -> None:
    health = HealthServer(asyncio.get_running_loop(), {"/livez": lambda: None}, bound=0.2)
    health.start()
    try:
        answered = threading.Event()

        def get_and_tell() -> tuple[int, dict[str, Any]]:
            try:
                return get(health.port, "/livez")
            finally:
                answered.set()

        answer = asyncio.get_running_loop().run_in_executor(None, get_and_tell)
        # the loop is blocked, as by a handler that never yields, until the probe answered
        assert answered.wait(timeout=30)
        assert await answer == (503, {"status": "fail", "reason":
                                      "the event loop did not answer within 0.2 s"})
        assert await asyncio.to_thread(get, health.port, "/livez") == (200, {"status": "ok"})
    finally:
        await asyncio.to_thread(health.close)


def test_a_taken_port_is_an_oserror() -> None:
    loop = asyncio.new_event_loop()
    try:
        first = HealthServer(loop, {})
        try:
            with pytest.raises(OSError):
                HealthServer(loop, {}, port=first.port)
        finally:
            first.close()
    finally:
        loop.close()


async def test_serves_probes_say_what_they_wait_for(relaybus_bus: relaybus.Bus) -> None:
    from relaybus.cli.serve import _State

    state = _State()
    assert state.startup_problem() == state.readiness_problem() == \
        "starting: connecting to the broker"
    state.bus = relaybus_bus
    state.rpc = relaybus_bus.rpc_server(Target(topic="probed", server="s1"), [Compute()])
    assert state.readiness_problem() == "starting: declaring the server's queues"
    await state.rpc.start()
    state.started = True
    assert state.startup_problem() is None and state.readiness_problem() is None
    state.draining = True
    assert state.readiness_problem() == \
        "draining: taking no new requests, finishing those in progress"
    assert state.startup_problem() is None  # started once is started
    await state.rpc.stop()
    await state.rpc.wait()
    state.draining = False
    assert state.readiness_problem() == "not consuming"
