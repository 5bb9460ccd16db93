"""Buses opened by a test, all closed when it ends.

A fixture hands the test a factory, so each test opens as many buses as it needs (a
client and servers on their own connections, say) without tracking them::

    @pytest.fixture
    async def make_bus():
        async with bus_factory("rabbit://guest:guest@localhost/") as make:
            yield make
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import relaybus

MakeBus = Callable[..., Awaitable[relaybus.Bus]]


@contextlib.asynccontextmanager
async def bus_factory(default_url: str) -> AsyncIterator[MakeBus]:
    """Yield ``make(url=None, **options)``, which connects a bus (to ``default_url``
    unless told otherwise); every bus it made is closed on the way out."""
    buses: list[relaybus.Bus] = []

    async def make(url: str | None = None, **options: Any) -> relaybus.Bus:
        bus = await relaybus.connect(url or default_url, **options)
        buses.append(bus)
        return bus

    try:
        yield make
    finally:
        for bus in buses:
            await bus.close()
