"""relaybus on RabbitMQ against oslo.messaging and plain aio-pika, in one run.

    python benchmarks/rabbit_bench.py [--scale 1.0] [--rounds 3] [--only relaybus,oslo,raw]
                                      [--uvloop] [--json]

For each library and round, a server process and a client process (benchmarks/
rabbit_peers.py) run the four workloads against the broker at 127.0.0.1:5672:
sequential calls (p50/p99 latency, calls/s), calls from 64 concurrent callers, casts and
notifications from 64 concurrent senders until the server received them all; each
process reports its peak RSS. The table shows the median of the rounds and the ratios
relaybus/oslo and relaybus/raw (above 1 is better for relaybus, except for latencies and
memory, where below 1 is better). ``--scale 0.1`` runs a tenth of the messages, for a
quick smoke test. Publisher confirms are on for every library.
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

PEERS = Path(__file__).with_name("rabbit_peers.py")
LIBRARIES = ("relaybus", "oslo", "raw")
ROWS = [  # (key, label, format, higher is better)
    ("seq_p50_us", "1. sequential call p50 (us)", "{:,.0f}", False),
    ("seq_p99_us", "1. sequential call p99 (us)", "{:,.0f}", False),
    ("seq_calls_per_s", "1. sequential calls/s", "{:,.0f}", True),
    ("concurrent_calls_per_s", "2. calls/s, 64 callers", "{:,.0f}", True),
    ("casts_per_s", "3. casts/s until received", "{:,.0f}", True),
    ("notifications_per_s", "4. notifications/s until received", "{:,.0f}", True),
    ("server_rss_mb", "peak RSS, server (MB)", "{:,.1f}", False),
    ("client_rss_mb", "peak RSS, client (MB)", "{:,.1f}", False),
]


def _lines(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{process.args} ended early (exit {process.wait()})")
    return json.loads(line)


def one_round(library: str, scale: float, uvloop: bool) -> dict[str, float]:
    """Run one server and one client of ``library``; return the client's results."""
    topic = f"bench_{library}_{uuid.uuid4().hex[:8]}"
    base = [sys.executable, str(PEERS), library]
    extra = ["--topic", topic, "--scale", str(scale)] + (["--uvloop"] if uvloop else [])
    server = subprocess.Popen([*base, "server", *extra], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert _lines(server).get("ready")
        client = subprocess.run([*base, "client", *extra], capture_output=True, text=True,
                                timeout=1800, check=False)
        if client.returncode != 0:
            raise RuntimeError(f"{library} client failed:\n{client.stderr[-3000:]}")
        report = json.loads(client.stdout.strip().splitlines()[-1])
    finally:
        assert server.stdin is not None
        server.stdin.close()
    server_report = _lines(server)
    server.wait(timeout=60)
    results = dict(report["results"])
    results["client_rss_mb"] = report["peak_rss_mb"]
    results["server_rss_mb"] = server_report["peak_rss_mb"]
    return results


def run(libraries: list[str], scale: float, rounds: int, uvloop: bool) -> dict[str, Any]:
    """Medians per library. Rounds interleave the libraries (relaybus, oslo, raw, relaybus,
    ...) so that a noisy neighbour on a shared machine weighs on all of them alike."""
    runs: dict[str, list[dict[str, float]]] = {library: [] for library in libraries}
    for number in range(rounds):
        for library in libraries:
            print(f"  round {number + 1} of {rounds}: {library}... (load {_load()})",
                  file=sys.stderr, flush=True)
            runs[library].append(one_round(library, scale, uvloop and library != "oslo"))
    return {library: {key: statistics.median(r[key] for r in done) for key in done[0]}
            for library, done in runs.items()}


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def table(medians: dict[str, dict[str, float]]) -> str:
    libraries = list(medians)
    ratios = [other for other in ("oslo", "raw") if other in medians and "relaybus" in medians]
    head = f"{'':36}" + "".join(f"{name:>12}" for name in libraries) \
        + "".join(f"{'relaybus/' + other:>16}" for other in ratios)
    lines = [head, "-" * len(head)]
    for key, label, fmt, _ in ROWS:
        cells = "".join(f"{fmt.format(medians[name][key]):>12}" for name in libraries)
        cells += "".join(f"{medians['relaybus'][key] / medians[other][key]:>15.2f}x"
                         for other in ratios)
        lines.append(f"{label:36}{cells}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are shown")
    parser.add_argument("--only", default=",".join(LIBRARIES),
                        help="comma-separated libraries to run (relaybus, oslo, raw)")
    parser.add_argument("--uvloop", action="store_true",
                        help="run relaybus and aio-pika on uvloop (must be installed)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    libraries = [name for name in args.only.split(",") if name]
    unknown = set(libraries) - set(LIBRARIES)
    if unknown:
        parser.error(f"unknown libraries: {', '.join(sorted(unknown))}")
    medians = run(libraries, args.scale, args.rounds, args.uvloop)
    if args.json:
        print(json.dumps(medians, indent=2))
        return
    print(f"RabbitMQ benchmark, median of {args.rounds} rounds, scale {args.scale}, "
          f"publisher confirms on, {'uvloop' if args.uvloop else 'asyncio'} event loop")
    print(table(medians))


if __name__ == "__main__":
    main()
