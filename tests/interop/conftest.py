"""Fixtures of the interop tests: a virtual host of their own, unique topics, relaybus
buses and oslo.messaging peers (see interop_support).

The session gets a fresh virtual host (created with rabbitmqctl, deleted at the end), so
nothing either library declares outlives the run; each test still takes its own topic.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from interop_support import BROKER, Oslo

import relaybus
from relaybus.testing.brokers import require_broker, require_program
from relaybus.testing.buses import bus_factory


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/interop/" in str(item.path).replace(os.sep, "/"):
            # oslo's threads may warn about eventlet or deprecated oslo modules at run time
            item.add_marker(pytest.mark.filterwarnings(
                r"ignore::DeprecationWarning:(oslo_\w+|kombu|amqp|eventlet|futurist)"))


def _rabbitmqctl(*args: str) -> None:
    require_program("rabbitmqctl", "for the interop vhost")
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def vhost() -> Iterator[str]:
    require_broker(*BROKER)
    name = f"relaybus-interop-{os.getpid()}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        _rabbitmqctl("delete_vhost", name)


@pytest.fixture
def url(vhost: str) -> str:
    return f"rabbit://guest:guest@127.0.0.1:5672/{vhost}"


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"\W+", "_", request.node.name)[-40:]
    return f"ri_{name}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def make_bus(url: str) -> AsyncIterator[Callable[..., Awaitable[relaybus.Bus]]]:
    async with bus_factory(url) as make:
        yield make


@pytest.fixture
async def bus(make_bus: Callable[..., Awaitable[relaybus.Bus]]) -> relaybus.Bus:
    return await make_bus()


@pytest.fixture
async def oslo(url: str) -> AsyncIterator[Oslo]:
    side = Oslo(url)
    try:
        yield side
    finally:
        await asyncio.to_thread(side.close)
