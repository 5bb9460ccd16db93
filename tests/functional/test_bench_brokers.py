"""relaybus bench runs its workloads on the real brokers too."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relaybus.testing.brokers import require_broker

BROKERS = {"rabbit": ("RabbitMQ", "127.0.0.1", 5672, "rabbit://guest:guest@127.0.0.1:5672/"),
           "nats": ("NATS", "127.0.0.1", 4222, "nats://127.0.0.1:4222")}


@pytest.mark.broker
@pytest.mark.parametrize("transport", sorted(BROKERS))
def test_bench_on_a_broker(transport: str) -> None:
    name, host, port, url = BROKERS[transport]
    require_broker(name, host, port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    result = subprocess.run([sys.executable, "-m", "relaybus", "bench", "--url", url,
                             "--scale", "0.01", "--rounds", "1", "--json"],
                            capture_output=True, text=True, timeout=120, env=env)
    if transport == "nats":  # the benchmark's notification stream stays on the server
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
        from cleanup import delete_nats_streams

        asyncio.run(delete_nats_streams(url, "relaybus_openstack_bench-n-"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    figures, ratios = report["figures"], report["ratios"]
    expected = {
        "sequential p50_us", "sequential p99_us", "sequential calls_s", "sequential cpu_us",
        "64 callers calls_s", "casts msgs_s", "notifications msgs_s",
        "asyncio floor p50_us", "asyncio floor cpu_us"}
    expected_ratios = {"sequential p50 / floor", "sequential cpu / floor"}
    if transport == "nats":  # plain nats-py ran the same workloads beside relaybus
        expected |= {"raw nats-py sequential p50_us", "raw nats-py sequential cpu_us",
                     "raw nats-py 64 callers calls_s", "raw nats-py notifications msgs_s"}
        expected_ratios |= {"sequential p50 / raw nats-py", "sequential cpu / raw nats-py",
                            "64 callers calls_s / raw nats-py",
                            "notifications msgs_s / raw nats-py"}
    assert set(figures) == expected
    assert set(ratios) == expected_ratios
    assert all(value > 0 for value in [*figures.values(), *ratios.values()])
