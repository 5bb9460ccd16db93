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
                             "--clients", "5", "--json"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == {
        "5 ws clients events_s", "5 ws clients deliveries_s", "5 ws clients dropped",
        "python ws latency p50_ms", "python ws latency p99_ms",
        "browser latency p50_ms", "browser latency p99_ms",
        "browser, console open, latency p50_ms", "browser, console open, latency p99_ms"}
    assert figures.pop("5 ws clients dropped") == 0
    assert all(value > 0 for value in figures.values())
