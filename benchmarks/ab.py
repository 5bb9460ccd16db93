"""A/B: relaybus at another revision against the working tree, on one benchmark, alternating.

    python benchmarks/ab.py --base REV [--bench rabbit|nats|memory] [--rounds 3] [--scale 0.5]

Checks REV out into a temporary git worktree and runs ``benchmarks/<bench>_bench.py
--only relaybus --rounds 1 --json`` (``memory_bench.py --rounds 1 --json``: relaybus and the
asyncio floor in one process) alternately with ``PYTHONPATH`` pointing at each
tree's ``src`` (base first, then this tree, then this tree first, and so on: ``--rounds``
pairs), so that load on the machine falls on both sides alike. Prints the median of each
figure per side and the ratio this/base (above 1 is better, except latencies and memory).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOWER_IS_BETTER = ("_us", "_mb")


def _run(bench: str, src: Path, scale: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(src))
    only = [] if bench == "memory" else ["--only", "relaybus"]
    out = subprocess.run([sys.executable, str(HERE / f"{bench}_bench.py"), *only,
                          "--rounds", "1", "--scale", str(scale), "--json"],
                         env=env, capture_output=True, text=True, check=True, timeout=1800)
    data = json.loads(out.stdout)
    return data.get("relaybus", data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("--bench", choices=("rabbit", "nats", "memory"), default="rabbit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relaybus-ab-") as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base_tree),
                        args.base], check=True, capture_output=True)
        try:
            results: dict[str, list[dict[str, Any]]] = {"base": [], "this": []}
            sides = (("base", base_tree / "src"), ("this", ROOT / "src"))
            for n in range(args.rounds):
                # ABBA: which side runs first alternates, so that what the first run of a
                # pair leaves to the second (a warm or a busier machine) falls on both
                for side, src in (sides if n % 2 == 0 else sides[::-1]):
                    print(f"round {n + 1}: {side}", file=sys.stderr, flush=True)
                    results[side].append(_run(args.bench, src, args.scale))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(base_tree)], check=False, capture_output=True)
    keys = [k for k, v in results["this"][0].items() if isinstance(v, (int, float))]
    print(f"| {args.bench} (median of {args.rounds}) | base {args.base[:10]} | this tree "
          f"| this/base |")
    print("|---|---|---|---|")
    for key in keys:
        base = statistics.median(r[key] for r in results["base"] if key in r)
        this = statistics.median(r[key] for r in results["this"] if key in r)
        ratio = this / base if base else float("nan")
        better = "lower is better" if key.endswith(LOWER_IS_BETTER) else ""
        print(f"| {key} {better} | {base:,.1f} | {this:,.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
