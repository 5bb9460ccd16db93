"""The transports the scenarios run on, and how to reach each broker directly."""

from __future__ import annotations

import os
import uuid

import pytest

from relaybus.testing.brokers import require_broker

URLS = {
    "memory": "memory://reliability",
    "rabbit": os.environ.get("RELAYBUS_RELIABILITY_RABBIT",
                             "rabbit://guest:guest@127.0.0.1:5672/"),
    "nats": os.environ.get("RELAYBUS_RELIABILITY_NATS", "nats://127.0.0.1:4222"),
}
BROKERS = {"rabbit": ("RabbitMQ", "127.0.0.1", 5672), "nats": ("NATS", "127.0.0.1", 4222)}


def need(transport: str) -> str:
    """The URL of a transport, after checking its broker answers (skip or fail if not)."""
    if transport in BROKERS:
        require_broker(*BROKERS[transport])
    return URLS[transport]


def unique(name: str) -> str:
    return f"rel_{name}_{uuid.uuid4().hex[:8]}"


def reachable(transport: str) -> bool:
    try:
        need(transport)
    except (pytest.skip.Exception, pytest.fail.Exception):
        return False
    return True
