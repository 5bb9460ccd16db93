"""Micro-benchmark of the embedded memory:// transport (the workloads of relaybus.bench).

    python benchmarks/memory_bench.py [--scale 1.0] [--rounds 5] [--json]

Server and client share this process, as memory:// is in-process. Medians of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from relaybus import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; medians are shown")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    medians = asyncio.run(bench.run("memory://bench", scale=args.scale, rounds=args.rounds))
    if args.json:
        print(json.dumps(medians, indent=2))
        return
    print(f"memory:// benchmark, median of {args.rounds} rounds (scale {args.scale})")
    for name, value in medians.items():
        print(f"  {name:<28} {value:>12,.0f}")


if __name__ == "__main__":
    main()
