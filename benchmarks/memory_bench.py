"""Micro-benchmark of the embedded memory:// transport (the workloads of relaybus.bench).

    python benchmarks/memory_bench.py [--scale 1.0] [--rounds 5] [--json]

Server and client share this process, as memory:// is in-process. Medians of the rounds,
with the asyncio floor (a bare queue request/reply with a JSON round trip, measured in the
same rounds) and relaybus's sequential call divided by it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from relaybus import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; medians are shown")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the event loop (uvloop must be installed)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    run: Any = asyncio.run
    if args.loop == "uvloop":
        import uvloop  # only when asked for: an optional extra
        run = uvloop.run
    medians = run(bench.run("memory://bench", scale=args.scale, rounds=args.rounds))
    if args.json:
        print(json.dumps({**medians, **bench.ratios(medians)}, indent=2))
        return
    print(f"memory:// benchmark, median of {args.rounds} rounds (scale {args.scale}, "
          f"{args.loop} loop, load {os.getloadavg()[0]:.2f})")
    for name, value in medians.items():
        print(f"  {name:<28} {value:>12,.1f}")
    for name, value in bench.ratios(medians).items():
        print(f"  {name:<28} {value:>11.2f}x")


if __name__ == "__main__":
    main()
