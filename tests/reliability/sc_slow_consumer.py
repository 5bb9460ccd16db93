"""Scenario 7: producers far faster than the consumer.

A producer sends notifications with confirms as fast as it can for a while (20 s; set
RELIABILITY_SLOW_SECONDS for minutes) to a consumer process that takes ~5 ms per message
two at a time. The backlog must wait in the broker, not in the consumer: its memory stays
bounded (prefetch / max ack pending); then the consumer speeds up and everything arrives,
nothing lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import Figures
from support import HERE, environment
from transports import unique

import relaybus

DURATION = float(os.environ.get("RELIABILITY_SLOW_SECONDS", "20"))
RSS_BOUND_MB = 100.0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _received(report: Path) -> int:
    try:
        return int(Path(f"{report}.count").read_text() or 0)
    except (OSError, ValueError):
        return 0


async def run(transport: str, url: str) -> Figures:
    figures = Figures("slow consumer", transport)
    topic = unique("slow")
    report = Path(tempfile.mkdtemp(prefix="relaybus-slow-")) / "seen.json"
    confirmed: set[int] = set()
    consumer = subprocess.Popen([sys.executable, str(HERE / "slow_consumer.py"), url, topic,  # noqa: ASYNC220 - starting a child is quick
                                 str(report)], env=environment(url, topic),
                                stdout=subprocess.PIPE, text=True)
    try:
        assert consumer.stdout is not None and consumer.stdout.readline().strip() == "ready"
        start_rss = peak_rss = _rss_mb(consumer.pid)
        async with await relaybus.connect(url) as bus:
            notifier = bus.notifier("fast-producer", topics=[topic])
            started = time.monotonic()
            next_sample = started
            while time.monotonic() - started < DURATION:
                seq = figures.sent
                figures.sent += 1
                try:
                    await notifier.info({}, "slow.tick", {"seq": seq})
                    confirmed.add(seq)
                except relaybus.MessagingError as exc:
                    figures.error(exc)
                if time.monotonic() >= next_sample:
                    peak_rss = max(peak_rss, _rss_mb(consumer.pid))
                    next_sample += 1.0
            produced_in = time.monotonic() - started
            figures.confirmed = len(confirmed)
        during = _received(report)
        consumer.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 120
        while _received(report) < len(confirmed) and time.monotonic() < deadline:
            peak_rss = max(peak_rss, _rss_mb(consumer.pid))
            await asyncio.sleep(0.5)  # the consumer reports by file; nothing to await
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(timeout=60)
        seen = {int(k): v for k, v in json.loads(report.read_text()).items()}
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
        if consumer.stdout is not None:
            consumer.stdout.close()
    figures.received = sum(seen.values())
    figures.lost = len(confirmed - set(seen))
    figures.duplicated = sum(n - 1 for n in seen.values())
    growth = peak_rss - start_rss
    figures.check("nothing confirmed was lost", figures.lost == 0)
    figures.check("the producer really outran the consumer", during < figures.confirmed * 0.8)
    figures.check(f"consumer memory grew less than {RSS_BOUND_MB:.0f} MB",
                  growth < RSS_BOUND_MB)
    figures.notes.append(f"{figures.confirmed} sent in {produced_in:.0f} s "
                         f"({figures.confirmed / produced_in:.0f}/s); the consumer had taken "
                         f"{during} by then; its RSS {start_rss:.0f} -> peak {peak_rss:.0f} MB")
    return figures
