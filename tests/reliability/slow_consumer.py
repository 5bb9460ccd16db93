"""The consumer process of scenario 7: slow until SIGUSR1, then fast; SIGTERM ends it.

    python slow_consumer.py URL TOPIC REPORT_FILE

It prints "ready" once listening, writes how many it has received to REPORT_FILE.count
every half second, and the received sequence numbers to REPORT_FILE when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import relaybus
from relaybus import Target

SLOW = 0.005


class Slow:
    def __init__(self) -> None:
        self.fast = False
        self.seen: Counter[int] = Counter()

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        if not self.fast:
            await asyncio.sleep(SLOW)
        self.seen[payload["seq"]] += 1


async def main(url: str, topic: str, report: Path) -> None:
    endpoint = Slow()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(endpoint, "fast", True))
    async with await relaybus.connect(url) as bus:
        async with bus.notification_listener([Target(topic=topic)], [endpoint], pool="slow",
                                             max_concurrency=2):
            print("ready", flush=True)
            while not stop.is_set():
                Path(f"{report}.count").write_text(str(sum(endpoint.seen.values())))  # noqa: ASYNC240 - a tiny report file
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
    report.write_text(json.dumps(endpoint.seen))  # noqa: ASYNC240 - a tiny report file


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
