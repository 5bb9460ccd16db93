"""What middleware costs a memory:// call: none, one pass-through layer, three, and Hooks.

    python benchmarks/middleware_bench.py [--calls 3000] [--rounds 5] [--json]

Each variant runs ``--calls`` sequential calls per round, in turn with the others, so that
load on the machine falls on all alike; the figures are the medians over rounds of each
round's p50 latency, in microseconds. A pass-through layer wraps ``send_request`` and
``handle_request``, so a call crosses it twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import relaybus
from relaybus import Target
from relaybus.middleware import HANDLE_REQUEST, SEND_REQUEST, Next


class Echo:
    async def echo(self, ctxt: Any, value: Any) -> Any:
        return value


class PassThrough(relaybus.Middleware):
    async def send_request(self, request: relaybus.RequestInfo,
                           call_next: Next[relaybus.RequestInfo]) -> Any:
        return await call_next(request)

    async def handle_request(self, request: relaybus.RequestInfo,
                             call_next: Next[relaybus.RequestInfo]) -> Any:
        return await call_next(request)


def _variants() -> dict[str, list[relaybus.Middleware]]:
    return {
        "none": [],
        "1 layer": [PassThrough()],
        "3 layers": [PassThrough(), PassThrough(), PassThrough()],
        "Hooks(before)": [relaybus.Hooks(before=lambda message: None,
                                         points=[SEND_REQUEST, HANDLE_REQUEST])],
    }


async def _p50(middleware: list[relaybus.Middleware], calls: int) -> float:
    async with await relaybus.connect("memory://middleware-bench",
                                      middleware=middleware) as bus:
        async with bus.rpc_server(Target(topic="bench", server="s1"), [Echo()]):
            client = bus.rpc_client(Target(topic="bench"), timeout=10)
            for _ in range(100):  # warm up
                await client.call({}, "echo", value=1)
            latencies = []
            for _ in range(calls):
                started = time.perf_counter()
                await client.call({}, "echo", value=1)
                latencies.append(time.perf_counter() - started)
    return statistics.median(latencies) * 1e6


async def run(calls: int, rounds: int) -> dict[str, float]:
    """The median p50 (µs) of each variant."""
    found: dict[str, list[float]] = {name: [] for name in _variants()}
    for _ in range(rounds):
        for name, middleware in _variants().items():
            found[name].append(await _p50(middleware, calls))
    return {f"{name} p50_us": statistics.median(values) for name, values in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    figures = asyncio.run(run(args.calls, args.rounds))
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"memory:// call with middleware, median of {args.rounds} rounds of {args.calls}")
    for name, value in figures.items():
        print(f"  {name:<24} {value:>8.1f}")


if __name__ == "__main__":
    main()
