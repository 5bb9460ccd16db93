"""``filter=`` reads topic filters as URLSearchParams writes them (a space is ``+``, the
wildcard ``%2B``), while ``topic=`` keeps a raw ``+`` as the wildcard for hand-typed URLs."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

from firehose_support import GatewayProcess, event, ws_client, ws_events


async def test_filters_survive_urlsearchparams_encoding(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway()
    base = f"ws://127.0.0.1:{gateway.port}/ws?"
    spaced = f"nova/{name} a/#"
    # urlencode's default (quote_plus) is URLSearchParams' encoding: " " -> "+", "+" -> "%2B"
    exact = base + urllib.parse.urlencode([("filter", spaced)])
    wildcard = base + urllib.parse.urlencode([("filter", "nova/+/#")])
    hand_typed = base + "topic=nova/+/%23"
    assert "+a%2F" in exact and "%2B" in wildcard
    async with ws_client(exact) as only_spaced, ws_client(wildcard) as every, \
            ws_client(hand_typed) as typed:
        await gateway.publish([event(f"{name}+a", "plus.source"),
                               event(f"{name} a", "space.source")])
        (got,) = await ws_events(only_spaced, 1)
        both = await ws_events(every, 2)
        typed_both = await ws_events(typed, 2)
    assert got["type"] == "space.source"
    assert [e["type"] for e in both] == [e["type"] for e in typed_both] == [
        "plus.source", "space.source"]
