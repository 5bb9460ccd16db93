"""How long a bus takes to notice a silent network partition (see docs/partitions.md).

A TCP proxy sits between a bus and its broker. Once the bus is connected and serving (an
RPC server and a notification listener, so it has consumers, as a service would), the
proxy turns into a black hole: it keeps both sockets open and reads everything, but
forwards nothing either way, which is what a peer sees when a firewall, a failed switch or
a suspended VM silently eats its packets. The figure is the time from that moment to the
driver's log line saying the connection is lost ("connection lost" on RabbitMQ, "lost the
connection to NATS" on NATS).

    python benchmarks/partition_detection.py                  # defaults and fast settings
    python benchmarks/partition_detection.py --only fast --json

Each case runs once per round; all cases run at the same time (the defaults take minutes).
Needs RabbitMQ on 127.0.0.1:5672 and NATS on 127.0.0.1:4222 (only connected to through
the proxy; nothing on the brokers is changed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import relaybus
from relaybus import Target

HOST = "127.0.0.1"


class BlackholeProxy:
    """Forwards to ``HOST:upstream``; after :meth:`blackhole`, reads and drops everything."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self.dark = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> BlackholeProxy:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def blackhole(self) -> None:
        self.dark = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                if not self.dark:
                    sink.write(data)
                    await sink.drain()
        except OSError:
            pass

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()


class Endpoint:
    def ping(self, ctxt: Any) -> str:
        return "pong"

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        pass


@dataclass
class Case:
    name: str
    transport: str
    upstream: int
    options: dict[str, Any]
    marker: str
    figures: list[float] = field(default_factory=list)

    def url(self, port: int) -> str:
        if self.transport == "rabbit":
            return f"rabbit://guest:guest@{HOST}:{port}/"
        return f"nats://{HOST}:{port}"


CASES = [
    Case("rabbit defaults (heartbeat=60)", "rabbit", 5672, {}, "connection lost"),
    Case("rabbit heartbeat=5", "rabbit", 5672, {"heartbeat": 5}, "connection lost"),
    Case("rabbit heartbeat=2", "rabbit", 5672, {"heartbeat": 2}, "connection lost"),
    Case("nats defaults (ping_interval=20)", "nats", 4222, {},
         "lost the connection to NATS"),
    Case("nats ping_interval=5", "nats", 4222, {"ping_interval": 5},
         "lost the connection to NATS"),
    Case("nats ping_interval=1", "nats", 4222, {"ping_interval": 1},
         "lost the connection to NATS"),
]


class _Watch(logging.Handler):
    """Sets ``event`` at the first log line that contains ``marker``."""

    def __init__(self, marker: str) -> None:
        super().__init__(logging.WARNING)
        self.marker = marker
        self.event: asyncio.Event | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.event is not None and self.marker in record.getMessage():
            self.event.set()


async def _measure(case: Case, timeout: float) -> float | None:
    """One case, in this process: the seconds until the driver noticed (None: never)."""
    watch = _Watch(case.marker)
    logger = logging.getLogger("relaybus")
    logger.addHandler(watch)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    proxy = await BlackholeProxy(case.upstream).start()
    topic = f"partition_{case.transport}_{proxy.port}"
    bus = await relaybus.connect(case.url(proxy.port), **case.options)
    try:
        server = bus.rpc_server(Target(topic=topic, server="s1"), [Endpoint()])
        listener = bus.notification_listener([Target(topic=topic)], [Endpoint()],
                                             pool=f"{topic}_pool")
        await server.start()
        await listener.start()
        assert await bus.rpc_client(Target(topic=topic), timeout=10).call({}, "ping") == "pong"
        watch.event = noticed = asyncio.Event()
        proxy.blackhole()
        started = time.monotonic()
        try:
            await asyncio.wait_for(noticed.wait(), timeout)
        except TimeoutError:
            return None
        return time.monotonic() - started
    finally:
        await proxy.close()  # the bus sees its sockets close: its close() is quick
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                await bus.close()


async def _child(index: int, timeout: float) -> float | None:
    """Run case ``index`` in a process of its own (log lines cannot mix between cases)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--case", str(index), "--timeout", str(timeout),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    value = json.loads(out)
    return None if value is None else float(value)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", choices=["all", "fast", "defaults"], default="all")
    parser.add_argument("--timeout", type=float, default=400.0,
                        help="seconds a case may take to notice before it counts as never")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:
        print(json.dumps(await _measure(CASES[args.case], args.timeout)))
        return
    chosen = [i for i, c in enumerate(CASES) if args.only == "all"
              or (args.only == "defaults") == ("defaults" in c.name)]
    for _ in range(args.rounds):
        results = await asyncio.gather(*(_child(i, args.timeout) for i in chosen))
        for i, figure in zip(chosen, results, strict=True):
            CASES[i].figures.append(float("inf") if figure is None else figure)
    table = {CASES[i].name: statistics.median(CASES[i].figures) for i in chosen}
    if args.json:
        json.dump({name: round(value, 1) for name, value in table.items()}, sys.stdout)
        print()
        return
    for i in chosen:
        case = CASES[i]
        runs = ", ".join(f"{f:.1f}" for f in case.figures)
        print(f"{case.name:34s} noticed after {table[case.name]:6.1f} s (median; runs: {runs})")


if __name__ == "__main__":
    asyncio.run(main())
