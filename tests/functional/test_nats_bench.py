"""The NATS benchmark still runs (its figures are read by people, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_nats_support import require_nats

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "nats_bench.py"

pytestmark = pytest.mark.broker


def test_the_benchmark_runs_at_a_tiny_scale() -> None:
    require_nats()
    result = subprocess.run([sys.executable, str(BENCH), "--scale", "0.01", "--rounds", "1",
                             "--json"], capture_output=True, text=True, timeout=50,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert set(figures) == {"relaybus", "raw"}
    for library in figures.values():
        assert all(value > 0 for value in library.values())
        assert {"seq_p50_us", "concurrent_calls_per_s", "casts_per_s",
                "notifications_per_s"} <= set(library)
