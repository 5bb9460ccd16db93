"""The memory benchmark still runs (its figures are read by people, not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "memory_bench.py"


def test_memory_benchmark_runs_at_a_tiny_scale() -> None:
    result = subprocess.run([sys.executable, str(BENCH), "--scale", "0.01", "--rounds", "1",
                             "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == {"sequential p50_us", "sequential p99_us", "sequential calls_s",
                            "sequential cpu_us", "asyncio floor p50_us", "asyncio floor cpu_us",
                            "64 callers calls_s", "casts msgs_s", "notifications msgs_s",
                            "sequential p50 / floor", "sequential cpu / floor"}
    assert all(value > 0 for value in figures.values())
