"""The standard workloads, against any transport, with the server in this process.

1. sequential calls with a ~200-byte argument: p50 / p99 latency, calls/s, and the CPU
   time of this process per call (client and server, as both live here)
2. calls from 64 concurrent callers: calls/s
3. casts, measured until the server has received all: msgs/s
4. notifications to a listener, until it has received all: msgs/s

and, in every round beside workload 1, the **asyncio floor**: the same sequential
request/reply done bare, a task answering over an ``asyncio.Queue`` with a JSON round trip
each way (msgspec, relaybus's own codec), in this process. :func:`ratios` divides
relaybus's figures by the floor's: on ``memory://`` that is what relaybus itself costs.

On ``nats://``, every round also runs the same sequential calls, 64 concurrent callers
and notifications with **plain nats-py** (request/reply, and JetStream with a pull
consumer; :mod:`relaybus.drivers.nats.rawpeer`) on the same servers, and :func:`ratios`
adds relaybus's figures divided by nats-py's.

Used by ``relaybus bench`` and ``benchmarks/memory_bench.py``. Each workload runs
``rounds`` times; :func:`run` returns the medians.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

import relaybus
from relaybus import Target

ARG = "x" * 200
WORKLOADS = ("sequential calls", "64 concurrent callers", "casts", "notifications")


class _Endpoint:
    def __init__(self) -> None:
        self.casts = 0
        self.expected = 0
        self.done = asyncio.Event()

    async def echo(self, ctxt: Any, value: str) -> str:
        return value

    async def count(self, ctxt: Any, value: str) -> None:
        self.casts += 1
        if self.casts >= self.expected:
            self.done.set()


class _Counter:
    def __init__(self) -> None:
        self.seen = 0
        self.expected = 0
        self.done = asyncio.Event()

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.seen += 1
        if self.seen >= self.expected:
            self.done.set()


async def _sequential(client: relaybus.RPCClient, n: int) -> dict[str, float]:
    latencies = []
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        await client.call({}, "echo", value=ARG)
        latencies.append(time.perf_counter() - t0)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    latencies.sort()
    return {"sequential p50_us": latencies[len(latencies) // 2] * 1e6,
            "sequential p99_us": latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1e6,
            "sequential calls_s": n / elapsed,
            "sequential cpu_us": cpu / n * 1e6}


async def floor(n: int) -> dict[str, float]:
    """The asyncio floor: ``n`` sequential request/replies over an ``asyncio.Queue``, the
    request and the reply each encoded to JSON and decoded again (see the module doc)."""
    encode, decode = msgspec.json.encode, msgspec.json.decode
    requests: asyncio.Queue[tuple[bytes, asyncio.Future[bytes]]] = asyncio.Queue()

    async def serve() -> None:
        while True:
            body, answer = await requests.get()
            request = decode(body)
            answer.set_result(encode({"result": request["args"]["value"]}))

    loop = asyncio.get_running_loop()
    server = loop.create_task(serve(), name="relaybus.bench.floor")
    try:
        latencies = []
        cpu = time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            answer: asyncio.Future[bytes] = loop.create_future()
            requests.put_nowait((encode({"method": "echo", "args": {"value": ARG}}), answer))
            if decode(await answer)["result"] != ARG:
                raise AssertionError("a reply did not match its request")
            latencies.append(time.perf_counter() - t0)
        cpu = time.process_time() - cpu
    finally:
        server.cancel()
        await asyncio.wait([server])
    latencies.sort()
    return {"asyncio floor p50_us": latencies[len(latencies) // 2] * 1e6,
            "asyncio floor cpu_us": cpu / n * 1e6}


#: relaybus's figures that :func:`ratios` divides by plain nats-py's (when it ran)
RAW_NATS_RATIOS = {"sequential p50 / raw nats-py": "sequential p50_us",
                   "sequential cpu / raw nats-py": "sequential cpu_us",
                   "64 callers calls_s / raw nats-py": "64 callers calls_s",
                   "notifications msgs_s / raw nats-py": "notifications msgs_s"}
RAW_NATS = "raw nats-py "


def ratios(figures: dict[str, float]) -> dict[str, float]:
    """relaybus's sequential call against the asyncio floor (latency and CPU per call);
    on ``nats://``, also relaybus's figures against plain nats-py's."""
    found = {"sequential p50 / floor": figures["sequential p50_us"]
             / figures["asyncio floor p50_us"],
             "sequential cpu / floor": figures["sequential cpu_us"]
             / figures["asyncio floor cpu_us"]}
    for ratio, name in RAW_NATS_RATIOS.items():
        if RAW_NATS + name in figures:
            found[ratio] = figures[name] / figures[RAW_NATS + name]
    return found


def _raw_peer(driver: Any) -> Callable[[dict[str, int]], Awaitable[dict[str, float]]] | None:
    """Plain nats-py's workloads on the servers of a ``nats://`` bus (None elsewhere)."""
    if getattr(getattr(driver, "url", None), "scheme", None) != "nats":
        return None
    from relaybus.drivers.nats import NatsDriver, rawpeer  # the driver's extra is installed

    if not isinstance(driver, NatsDriver):
        return None
    return functools.partial(rawpeer.run, driver)


async def _concurrent(client: relaybus.RPCClient, n: int, callers: int = 64) -> dict[str, float]:
    per_caller = max(n // callers, 1)

    async def caller() -> None:
        for _ in range(per_caller):
            if await client.call({}, "echo", value=ARG) != ARG:
                raise AssertionError("a reply did not match its call")

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return {"64 callers calls_s": per_caller * callers / (time.perf_counter() - started)}


async def _casts(client: relaybus.RPCClient, endpoint: _Endpoint, n: int) -> dict[str, float]:
    endpoint.casts, endpoint.expected, endpoint.done = 0, n, asyncio.Event()
    started = time.perf_counter()
    for _ in range(n):
        await client.cast({}, "count", value=ARG)
    await endpoint.done.wait()
    return {"casts msgs_s": n / (time.perf_counter() - started)}


async def _notifications(notifier: relaybus.Notifier, counter: _Counter,
                         n: int) -> dict[str, float]:
    counter.seen, counter.expected, counter.done = 0, n, asyncio.Event()
    started = time.perf_counter()
    for i in range(n):
        await notifier.info({}, "bench.event", {"n": i, "pad": ARG})
    await counter.done.wait()
    return {"notifications msgs_s": n / (time.perf_counter() - started)}


async def run(url: str | None = None, *, scale: float = 1.0, rounds: int = 3,
              progress: Callable[[str], None] | None = None,
              **connect_options: Any) -> dict[str, float]:
    """Run every workload ``rounds`` times on ``url``; returns the median of each figure.

    ``progress(workload)`` is called after each workload of each round.
    """
    if scale <= 0 or rounds < 1:
        raise ValueError("scale must be positive and rounds at least 1")
    counts = {"sequential calls": int(2000 * scale), "64 concurrent callers": int(20000 * scale),
              "casts": int(50000 * scale), "notifications": int(50000 * scale)}
    if min(counts.values()) < 1:
        raise ValueError(f"scale {scale} leaves a workload with no messages")
    figures: dict[str, list[float]] = {}
    suffix = uuid.uuid4().hex[:8]
    async with await relaybus.connect(url, **connect_options) as bus:
        peer = _raw_peer(bus.driver)
        endpoint, counter = _Endpoint(), _Counter()
        server = bus.rpc_server(Target(topic=f"bench_{suffix}", server="s1"), [endpoint])
        listener = bus.notification_listener([Target(topic=f"bench_n_{suffix}")], [counter])
        async with server, listener:
            client = bus.rpc_client(Target(topic=f"bench_{suffix}"), timeout=60)
            notifier = bus.notifier("bench", topics=[f"bench_n_{suffix}"])
            for _ in range(rounds):
                for key, value in (await floor(counts["sequential calls"])).items():
                    figures.setdefault(key, []).append(value)
                for name, result in (
                        ("sequential calls", _sequential(client, counts["sequential calls"])),
                        ("64 concurrent callers",
                         _concurrent(client, counts["64 concurrent callers"])),
                        ("casts", _casts(client, endpoint, counts["casts"])),
                        ("notifications",
                         _notifications(notifier, counter, counts["notifications"]))):
                    for key, value in (await result).items():
                        figures.setdefault(key, []).append(value)
                    if progress is not None:
                        progress(name)
                if peer is not None:  # interleaved with relaybus's rounds: load hits both
                    for key, value in (await peer(counts)).items():
                        figures.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in figures.items()}
