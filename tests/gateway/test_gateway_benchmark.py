"""The firehose benchmark still runs (its figures are read by people, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from firehose_support import ROOT, need_program

BENCH = ROOT / "benchmarks" / "firehose_bench.py"


def test_the_firehose_benchmark_runs_at_a_tiny_scale() -> None:
    need_program("chromium")
    need_program("chromedriver")
    result = subprocess.run([sys.executable, str(BENCH), "--scale", "0.01", "--rounds", "1",
                             "--clients", "5", "--idle", "20", "--loaded-clients", "10",
                             "--json"], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == {
        "load average (1 min) at start",
        "20 idle subscribers: KB each", "20 idle subscribers: gateway RSS MB",
        "20 idle subscribers: connect s",
        "10 batching ws clients: load average at start",
        "10 batching ws clients deliveries_s",
        "10 batching ws clients: gateway CPU us per delivery",
        "10 batching ws clients: clients' CPU us per delivery",
        "10 batching ws clients dropped",
        "10 batching ws clients, 250 events/s: load average at start",
        "10 batching ws clients, 250 events/s: browser latency p50_ms",
        "10 batching ws clients, 250 events/s: browser latency p99_ms",
        "10 batching ws clients, 250 events/s: worst round's p99_ms",
        "10 batching ws clients, 250 events/s: gateway CPU us per delivery",
        "10 batching ws clients, 250 events/s: draining clients' CPU s",
        "10 batching ws clients, 250 events/s: longest GC pause ms",
        "10 batching ws clients, 250 events/s: full GCs",
        "10 batching ws clients: load average at end",
        "5 ws clients events_s", "5 ws clients deliveries_s", "5 ws clients dropped",
        "python ws latency p50_ms", "python ws latency p99_ms",
        "browser latency p50_ms", "browser latency p99_ms",
        "browser, console open, latency p50_ms", "browser, console open, latency p99_ms"}
    assert figures.pop("5 ws clients dropped") == figures.pop("10 batching ws clients dropped") == 0
    # Memory per subscriber is a difference of two readings: it may be about zero; so may
    # the garbage collector's work during a short run.
    figures.pop("20 idle subscribers: KB each")
    figures.pop("10 batching ws clients, 250 events/s: longest GC pause ms")
    figures.pop("10 batching ws clients, 250 events/s: full GCs")
    assert all(value > 0 for value in figures.values())
