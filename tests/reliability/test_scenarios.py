"""Each scenario on each of its transports must keep its promise."""

from __future__ import annotations

import pytest
from cleanup import delete_nats_streams
from figures import markdown
from scenarios import SCENARIOS
from transports import need

CASES = [(name, transport) for name, (_, transports) in SCENARIOS.items()
         for transport in transports]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name, transport", CASES, ids=[f"{n}-{t}" for n, t in CASES])
async def test_scenario(name: str, transport: str) -> None:
    scenario, _ = SCENARIOS[name]
    url = need(transport)
    try:
        figures = await scenario(transport, url)
    finally:
        if transport == "nats":
            await delete_nats_streams(url)
    assert figures.passed, markdown([figures])
