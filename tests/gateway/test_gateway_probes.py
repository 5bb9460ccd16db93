"""The gateway's three Kubernetes probes, each with its own meaning, read while its MQTT
broker (a Mosquitto of the test's own) is away, comes, and goes again (issue 16)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from firehose_support import GatewayProcess, Mosquitto
from test_gateway_mqtt_resilience import http, until

pytestmark = pytest.mark.broker


async def _status(gateway: GatewayProcess, path: str, expected: int) -> bool:
    return (await http(gateway, path))[0] == expected


async def test_livez_startupz_and_readyz_say_different_things(
        mosquitto: Mosquitto, start_gateway: Callable[..., GatewayProcess]) -> None:
    await asyncio.to_thread(mosquitto.stop)  # the gateway starts with its broker away
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)

    status, live = await http(gateway, "/livez")
    assert status == 200 and live["status"] == "alive" and live["loop_lag_ms"] >= 0
    status, startup = await http(gateway, "/startupz")
    assert status == 503 and startup["status"] == "starting", startup
    assert startup["waiting_for"] == ["the first connection to the MQTT broker"]
    assert "not connected to the MQTT broker" in startup["problems"][0]
    status, ready = await http(gateway, "/readyz")
    assert status == 503 and ready["status"] == "not-ready"

    await asyncio.to_thread(mosquitto.restart)
    await until(lambda: _status(gateway, "/startupz", 200), "started")
    status, startup = await http(gateway, "/startupz")
    assert startup == {"status": "started", "instance": live["instance"]}
    await until(lambda: _status(gateway, "/readyz", 200), "ready")

    # The broker goes away again: not ready, but started once and for all, and alive.
    await asyncio.to_thread(mosquitto.stop)
    await until(lambda: _status(gateway, "/readyz", 503), "not ready")
    assert (await http(gateway, "/startupz"))[0] == 200
    assert (await http(gateway, "/livez"))[0] == 200
    assert gateway.process is not None and gateway.process.poll() is None
    await asyncio.to_thread(mosquitto.restart)  # so the fixture stops a running broker


async def test_without_mqtt_the_gateway_is_started_once_it_listens(
        start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = start_gateway()
    status, startup = await http(gateway, "/startupz")
    assert status == 200 and startup["status"] == "started"
    status, ready = await http(gateway, "/readyz")
    assert status == 200 and ready["status"] == "ready"
