"""Scenario 11: old and new clients against a server across minor and major versions.

Negotiation must pick a compatible endpoint or fail at once with UnsupportedVersion —
never by timing out — and a client's version_cap must keep it from sending what an
older server cannot take.
"""

from __future__ import annotations

import time
from typing import Any

from figures import Figures
from transports import unique

import relaybus
from relaybus import Target

TIMEOUT = 10.0


class V1:
    target = Target(namespace="inventory", version="1.3")

    async def describe(self, ctxt: Any, item: str) -> str:
        return f"v1.3 {item}"


class V2:
    target = Target(namespace="inventory", version="2.1")

    async def describe(self, ctxt: Any, item: str, detail: bool = False) -> str:
        return f"v2.1 {item}{' (detailed)' if detail else ''}"


CASES = [("1.0", "v1.3"), ("1.3", "v1.3"), ("1.4", None), ("2.0", "v2.1"), ("2.1", "v2.1"),
         ("2.2", None), ("3.0", None)]


async def run(transport: str, url: str) -> Figures:
    figures = Figures("version skew", transport)
    topic = unique("skew")
    slowest_failure = 0.0
    async with await relaybus.connect(url) as bus:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [V1(), V2()]):
            base = bus.rpc_client(Target(topic=topic, namespace="inventory"), timeout=TIMEOUT)
            for version, expected in CASES:
                figures.sent += 1
                started = time.perf_counter()
                try:
                    got = await base.prepare(version=version).call({}, "describe", item="x")
                    figures.received += 1
                    figures.check(f"{version} served by {expected}",
                                  expected is not None and got.startswith(expected))
                except relaybus.UnsupportedVersion as exc:
                    figures.error(exc)
                    elapsed = time.perf_counter() - started
                    slowest_failure = max(slowest_failure, elapsed)
                    figures.check(f"{version} refused at once", expected is None
                                  and elapsed < TIMEOUT / 4)
            capped = base.prepare(version="2.0", version_cap="1.3")
            figures.check("version_cap refuses locally", not capped.can_send_version())
            try:
                await capped.call({}, "describe", item="x")
                figures.check("capped call refused", False)
            except relaybus.RPCVersionCapError as exc:
                figures.error(exc)
            older = base.prepare(version="1.3") if not capped.can_send_version() else capped
            figures.check("capped client falls back to 1.3",
                          (await older.call({}, "describe", item="x")).startswith("v1.3"))
    figures.recovery_s = slowest_failure
    figures.notes.append(f"slowest refusal {slowest_failure * 1000:.1f} ms "
                         f"(call timeout {TIMEOUT:.0f} s)")
    return figures
