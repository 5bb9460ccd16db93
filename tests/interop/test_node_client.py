"""A Node.js client written from docs/protocol alone talks to a relaybus server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

import relaybus
from relaybus.contracts.conformance import reference_server
from relaybus.testing.brokers import require_broker

CLIENT = Path(__file__).resolve().parent / "node" / "client.js"
URL = "rabbit://guest:guest@127.0.0.1:5672/"

pytestmark = [pytest.mark.broker, pytest.mark.interop]


async def test_node_client_calls_gets_a_remote_error_and_a_notification(
        node_modules: Path) -> None:
    require_broker("RabbitMQ", "127.0.0.1", 5672)
    topic = f"node_interop_{uuid.uuid4().hex[:8]}"
    async with await relaybus.connect(URL) as bus, reference_server(bus, topic, "py1"):
        process = await asyncio.create_subprocess_exec(
            "node", str(CLIENT), "--url", "amqp://guest:guest@127.0.0.1:5672/",
            "--topic", topic, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    output = stdout.decode()
    assert process.returncode == 0, output + stderr.decode()
    assert "PASS call: echo returned the value unchanged" in output
    assert "PASS remote error: builtins.ValueError: boom from node" in output
    assert "PASS version negotiation: Endpoint does not support RPC version 2.0." in output
    assert "PASS notification: node.check." in output and "from conformance.py1" in output
    assert "4 passed, 0 failed" in output
