"""What uvloop changes: the same workloads on asyncio's loop and on uvloop, alternating.

    python benchmarks/uvloop_ab.py [--rounds 3] [--scale 0.3] [--only dropin,rabbit,nats]

relaybus picks its loop with ``$RELAYBUS_LOOP`` (see relaybus.loops; uvloop must be
installed, ``pip install 'relaybus[uvloop]'``). Each round runs every workload once with
``RELAYBUS_LOOP=asyncio`` and once with ``RELAYBUS_LOOP=uvloop``, the order swapped from
one round to the next, so a noisy neighbour weighs on both alike; the table shows medians.

- ``dropin``: benchmarks/oslo_dropin_bench.py's drop-in server and client processes
  (threads calling relaybus.sync's loop, as oslo.messaging users write them), at ``--scale``;
  CPU is both processes' user+system time over every message they exchanged.
- ``rabbit``, ``nats``: ``relaybus bench --json`` (client and server in one process) at
  ``--scale``; its own CPU per sequential call, and the whole process's CPU over every
  message of the run (on nats://, relaybus's and the plain nats-py peer's that
  ``relaybus bench`` runs beside it, whose own figures are shown too).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import oslo_dropin_bench as dropin
from rabbit_bench import _load
from rabbit_peers import WARMUP, counts

LOOPS = ("asyncio", "uvloop")
URLS = {"rabbit": "rabbit://guest:guest@127.0.0.1:5672/", "nats": "nats://127.0.0.1:4222"}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _with_loop(loop: str, work: Callable[[], dict[str, float]]) -> tuple[dict[str, float], float]:
    """Run ``work`` with its child processes on ``loop``; its figures and their CPU seconds."""
    os.environ["RELAYBUS_LOOP"] = loop
    before = _children_cpu()
    try:
        figures = work()
    finally:
        del os.environ["RELAYBUS_LOOP"]
    return figures, _children_cpu() - before


def dropin_round(loop: str, conf_file: str, scale: float) -> dict[str, float]:
    n = counts(scale)
    messages = WARMUP + sum(n.values())
    figures, cpu = _with_loop(loop, lambda: dropin.one_round("dropin", conf_file, scale))
    return {"calls/s, 64 threads": figures["concurrent_calls_per_s"],
            "casts/s": figures["casts_per_s"],
            "notifications/s": figures["notifications_per_s"],
            "sequential p50 (us)": figures["seq_p50_us"],
            "CPU per message (us)": cpu / messages * 1e6}


def bench_round(loop: str, transport: str, scale: float) -> dict[str, float]:
    messages = int(2000 * scale) * 2 + int(20000 * scale) + int(50000 * scale) * 2

    def work() -> dict[str, float]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("RELAYBUS_") or k == "RELAYBUS_LOOP"}
        done = subprocess.run([sys.executable, "-m", "relaybus", "bench", "--url",
                               URLS[transport], "--scale", str(scale), "--rounds", "1",
                               "--json"], capture_output=True, text=True, timeout=900,
                              env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"relaybus bench on {transport} failed:\n{done.stderr[-3000:]}")
        report = json.loads(done.stdout)
        assert report["loop"] == loop, report["loop"]
        return dict(report["figures"])

    figures, cpu = _with_loop(loop, work)
    raw = "raw nats-py "
    result = {"calls/s, 64 callers": figures["64 callers calls_s"],
              "casts/s": figures["casts msgs_s"],
              "notifications/s": figures["notifications msgs_s"],
              "sequential p50 (us)": figures["sequential p50_us"],
              "CPU per sequential call (us)": figures["sequential cpu_us"]}
    if raw + "64 callers calls_s" in figures:  # nats://: plain nats-py ran in the process too
        messages += int(2000 * scale) + int(20000 * scale) + int(50000 * scale)
        result.update({
            "raw nats-py calls/s, 64 callers": figures[raw + "64 callers calls_s"],
            "raw nats-py CPU per sequential call": figures[raw + "sequential cpu_us"],
            "relaybus/raw calls/s, 64 callers": figures["64 callers calls_s"]
            / figures[raw + "64 callers calls_s"]})
    result["process CPU per message (us)"] = cpu / messages * 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--only", default="dropin,rabbit,nats")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workloads = args.only.split(",")
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        w: {loop: [] for loop in LOOPS} for w in workloads}
    loads = []
    with tempfile.TemporaryDirectory() as directory:
        conf_file = str(Path(directory) / "bench.conf")
        Path(conf_file).write_text(dropin.CONF)
        for number in range(args.rounds):
            order = LOOPS if number % 2 == 0 else LOOPS[::-1]
            for workload in workloads:
                for loop in order:
                    loads.append(float(_load()))
                    print(f"  round {number + 1}/{args.rounds}: {workload} on {loop} "
                          f"(load {loads[-1]})", file=sys.stderr, flush=True)
                    result = dropin_round(loop, conf_file, args.scale) if workload == "dropin" \
                        else bench_round(loop, workload, args.scale)
                    runs[workload][loop].append(result)
    medians = {w: {loop: {key: statistics.median(r[key] for r in done)
                          for key in done[0]} for loop, done in by_loop.items()}
               for w, by_loop in runs.items()}
    if args.json:
        print(json.dumps({"medians": medians, "runs": runs, "load": loads}, indent=2))
        return
    print(f"asyncio loop vs uvloop, median of {args.rounds} alternating rounds, scale "
          f"{args.scale}, load average {min(loads):.1f}-{max(loads):.1f}")
    for workload, by_loop in medians.items():
        print(f"\n{workload:34}{'asyncio':>12}{'uvloop':>12}{'uvloop/asyncio':>16}")
        for key, value in by_loop["asyncio"].items():
            other = by_loop["uvloop"][key]
            print(f"  {key:32}{value:>12,.1f}{other:>12,.1f}{other / value:>15.2f}x")


if __name__ == "__main__":
    main()
