"""relaybus on NATS against plain nats-py, in one run.

    python benchmarks/nats_bench.py [--scale 1.0] [--rounds 3] [--only relaybus,raw]
                                    [--url nats://127.0.0.1:4222] [--json]

For each library and round, a server process and a client process (benchmarks/
nats_peers.py) run four workloads against the NATS server (JetStream enabled): sequential
calls (p50/p99 latency, calls/s), calls from 64 concurrent callers, casts from 64
concurrent senders until the server received them all, and notifications from 64
concurrent senders until the listener received them all; each process reports its peak
RSS. The table shows the median of the rounds and the ratio relaybus/raw (above 1 is
better for relaybus, except for latencies and memory, where below 1 is better).
``--scale 0.05 --rounds 1`` is a smoke test of a few seconds.

relaybus runs with its defaults: casts confirmed on receipt (the raw casts are plain
publishes, unconfirmed; row 3b repeats workload 3 with relaybus's ``confirm_casts=0``,
the comparable figure), notifications stored by JetStream with ``Nats-Msg-Id`` and pulled
by a durable consumer, oslo's JSON envelope on every message. Counts at scale 1: 2,000
sequential calls (after 300 warm-up calls), 20,000 concurrent calls, 50,000 casts,
50,000 notifications.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

PEERS = Path(__file__).with_name("nats_peers.py")
LIBRARIES = ("relaybus", "raw")
ROWS = [  # (key, label, format)
    ("seq_p50_us", "1. sequential call p50 (us)", "{:,.0f}"),
    ("seq_p99_us", "1. sequential call p99 (us)", "{:,.0f}"),
    ("seq_calls_per_s", "1. sequential calls/s", "{:,.0f}"),
    ("seq_cpu_us", "1. CPU per call, both sides (us)", "{:,.1f}"),
    ("concurrent_calls_per_s", "2. calls/s, 64 callers", "{:,.0f}"),
    ("concurrent_cpu_us", "2. CPU per call, both sides (us)", "{:,.1f}"),
    ("concurrent_cpu_client_us", "2.   of which the client (us)", "{:,.1f}"),
    ("concurrent_cpu_server_us", "2.   of which the server (us)", "{:,.1f}"),
    ("casts_per_s", "3. casts/s until received", "{:,.0f}"),
    ("blind_casts_per_s", "3b. same, confirm_casts=0", "{:,.0f}"),
    ("notifications_per_s", "4. notifications/s until received", "{:,.0f}"),
    ("notifications_cpu_us", "4. CPU per notification, both (us)", "{:,.1f}"),
    ("server_rss_mb", "peak RSS, server (MB)", "{:,.1f}"),
    ("client_rss_mb", "peak RSS, client (MB)", "{:,.1f}"),
]


def _line(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{process.args} ended early (exit {process.wait()})")
    return json.loads(line)


def one_round(library: str, scale: float, url: str, loop: str = "asyncio") -> dict[str, float]:
    """Run one server and one client of ``library``; return the client's results."""
    topic = f"bench_{library}_{uuid.uuid4().hex[:8]}"
    base = [sys.executable, str(PEERS), library]
    extra = ["--topic", topic, "--scale", str(scale), "--url", url, "--loop", loop]
    server = subprocess.Popen([*base, "server", *extra], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        if not _line(server).get("ready"):
            raise RuntimeError(f"{library} server did not start")
        client = subprocess.run([*base, "client", *extra], capture_output=True, text=True,
                                timeout=1800, check=False)
        if client.returncode != 0:
            raise RuntimeError(f"{library} client failed:\n{client.stderr[-3000:]}")
        report = json.loads(client.stdout.strip().splitlines()[-1])
    finally:
        assert server.stdin is not None
        server.stdin.close()
    server_report = _line(server)
    server.wait(timeout=60)
    results = dict(report["results"])
    results["client_rss_mb"] = report["peak_rss_mb"]
    results["server_rss_mb"] = server_report["peak_rss_mb"]
    return results


def run(libraries: list[str], scale: float, rounds: int, url: str,
        loop: str = "asyncio") -> dict[str, Any]:
    """Medians per library; rounds interleave the libraries so noise weighs on both."""
    runs: dict[str, list[dict[str, float]]] = {library: [] for library in libraries}
    for number in range(rounds):
        for library in libraries:
            print(f"  round {number + 1} of {rounds}: {library}... (load {_load()})",
                  file=sys.stderr, flush=True)
            runs[library].append(one_round(library, scale, url, loop))
    return {library: {key: statistics.median(r[key] for r in done) for key in done[0]}
            for library, done in runs.items()}


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def table(medians: dict[str, dict[str, float]]) -> str:
    libraries = list(medians)
    ratio = "relaybus" in medians and "raw" in medians
    head = f"{'':36}" + "".join(f"{name:>12}" for name in libraries) \
        + (f"{'relaybus/raw':>16}" if ratio else "")
    lines = [head, "-" * len(head)]
    for key, label, fmt in ROWS:
        cells = "".join(f"{fmt.format(medians[name][key]):>12}" for name in libraries)
        if ratio:
            cells += f"{medians['relaybus'][key] / medians['raw'][key]:>15.2f}x"
        lines.append(f"{label:36}{cells}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are shown")
    parser.add_argument("--only", default=",".join(LIBRARIES),
                        help="comma-separated libraries to run (relaybus, raw)")
    parser.add_argument("--url", default="nats://127.0.0.1:4222", help="the NATS server")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the event loop of every process (uvloop must be installed)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    libraries = [name for name in args.only.split(",") if name]
    unknown = set(libraries) - set(LIBRARIES)
    if unknown or not libraries:
        parser.error(f"choose libraries among {', '.join(LIBRARIES)}")
    if args.scale <= 0 or args.rounds < 1:
        parser.error("--scale must be positive and --rounds at least 1")
    medians = run(libraries, args.scale, args.rounds, args.url, args.loop)
    if args.json:
        print(json.dumps(medians, indent=2))
        return
    print(f"NATS benchmark, median of {args.rounds} rounds, scale {args.scale}, {args.url}, "
          f"{args.loop} loop, load {_load()}")
    print(table(medians))


if __name__ == "__main__":
    main()
