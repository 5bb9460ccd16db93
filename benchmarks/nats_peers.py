"""The processes of benchmarks/nats_bench.py: a server and a client, relaybus or raw nats-py.

    python benchmarks/nats_peers.py {relaybus,raw} server --topic T [--url U] [--scale S]
    python benchmarks/nats_peers.py {relaybus,raw} client --topic T [--url U] [--scale S]

A server prints ``{"ready": true}`` once it serves, runs until its stdin closes, then
prints ``{"peak_rss_mb": ...}``. A client runs the workloads and prints
``{"results": {...}, "peak_rss_mb": ...}``. "Received all" is known by asking the server
(a call), which answers once its counter reached the number sent.

``raw`` is nats-py as its documentation shows it: request/reply with ``msg.respond``,
plain publishes for casts (no confirmation), ``js.publish`` and a pull consumer
(``fetch`` in batches, explicit acks) for notifications, 200-byte bodies without
oslo's envelope.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from typing import Any

import nats
import nats.errors
import nats.js.errors

import relaybus
from relaybus import Target

ARG = "x" * 200
CALLERS = 64


def counts(scale: float) -> dict[str, int]:
    return {"warmup": max(int(300 * scale), 1), "sequential": max(int(2000 * scale), 10),
            "concurrent": max(int(20000 * scale), CALLERS),
            "casts": max(int(50000 * scale), CALLERS),
            "notifications": max(int(50000 * scale), CALLERS)}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(document: dict[str, Any]) -> None:
    print(json.dumps(document), flush=True)


async def stdin_closed() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


class Counter:
    """Counts what a server received; ``wait`` returns once a number was reached."""

    def __init__(self) -> None:
        self.seen = {"casts": 0, "notifications": 0}
        self.changed = asyncio.Event()

    def bump(self, kind: str) -> None:
        self.seen[kind] += 1
        self.changed.set()

    async def wait(self, kind: str, n: int) -> int:
        while self.seen[kind] < n:
            self.changed.clear()
            await self.changed.wait()
        return self.seen[kind]

    def reset(self) -> None:
        self.seen = {"casts": 0, "notifications": 0}


class CpuMeter:
    """CPU seconds of both processes (this one's clock, and the server's, asked by
    ``server_cpu``) over a workload, per message in microseconds."""

    def __init__(self, server_cpu: Any) -> None:
        self._server_cpu = server_cpu
        self._mine = self._theirs = 0.0

    async def start(self) -> None:
        self._theirs = await self._server_cpu()
        self._mine = time.process_time()

    async def per_message(self, n: int) -> tuple[float, float]:
        """(client, server) CPU microseconds per message since :meth:`start`."""
        mine = time.process_time() - self._mine
        theirs = await self._server_cpu() - self._theirs
        return mine / n * 1e6, theirs / n * 1e6


def cpu_figures(prefix: str, figures: tuple[float, float]) -> dict[str, float]:
    client, server = figures
    return {f"{prefix}_cpu_client_us": client, f"{prefix}_cpu_server_us": server,
            f"{prefix}_cpu_us": client + server}


def latency_figures(latencies: list[float], elapsed: float) -> dict[str, float]:
    latencies.sort()
    return {"seq_p50_us": latencies[len(latencies) // 2] * 1e6,
            "seq_p99_us": latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1e6,
            "seq_calls_per_s": len(latencies) / elapsed}


async def spread(total: int, send: Any) -> None:
    """``total`` sends from CALLERS concurrent senders."""
    share = [total // CALLERS + (1 if i < total % CALLERS else 0) for i in range(CALLERS)]

    async def sender(n: int) -> None:
        for _ in range(n):
            await send()

    await asyncio.gather(*(sender(n) for n in share))


# -- relaybus ------------------------------------------------------------------------

class Endpoint:
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    async def echo(self, ctxt: Any, value: str) -> str:
        return value

    async def count(self, ctxt: Any, value: str) -> None:
        self.counter.bump("casts")

    async def wait_for(self, ctxt: Any, kind: str, n: int) -> int:
        return await self.counter.wait(kind, n)

    async def reset(self, ctxt: Any) -> None:
        self.counter.reset()

    async def cpu(self, ctxt: Any) -> float:
        return time.process_time()


class Listener:
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.counter.bump("notifications")


async def relaybus_server(args: argparse.Namespace) -> None:
    counter = Counter()
    async with await relaybus.connect(args.url) as bus:
        server = bus.rpc_server(Target(topic=args.topic, server="s1"), [Endpoint(counter)],
                                max_concurrency=256)
        listener = bus.notification_listener([Target(topic=f"{args.topic}_n")],
                                             [Listener(counter)], max_concurrency=256)
        async with server, listener:
            emit({"ready": True})
            await stdin_closed()
        stream = await bus.driver.stream_for(Target(topic=f"{args.topic}_n"))  # type: ignore[attr-defined]
    nc = await nats.connect(args.url)  # the listener is gone: the stream can go too
    await nc.jsm().delete_stream(stream)
    await nc.close()
    emit({"peak_rss_mb": peak_rss_mb()})


async def relaybus_client(args: argparse.Namespace) -> dict[str, float]:
    n = counts(args.scale)
    results: dict[str, float] = {}
    async with await relaybus.connect(args.url) as bus:
        client = bus.rpc_client(Target(topic=args.topic), timeout=300)
        meter = CpuMeter(lambda: client.call({}, "cpu"))
        for _ in range(n["warmup"]):
            await client.call({}, "echo", value=ARG)
        latencies = []
        await meter.start()
        started = time.perf_counter()
        for _ in range(n["sequential"]):
            t0 = time.perf_counter()
            await client.call({}, "echo", value=ARG)
            latencies.append(time.perf_counter() - t0)
        results.update(latency_figures(latencies, time.perf_counter() - started))
        results.update(cpu_figures("seq", await meter.per_message(n["sequential"])))

        async def call() -> None:
            if await client.call({}, "echo", value=ARG) != ARG:
                raise AssertionError("a reply did not match its call")

        await meter.start()
        started = time.perf_counter()
        await spread(n["concurrent"], call)
        results["concurrent_calls_per_s"] = n["concurrent"] / (time.perf_counter() - started)
        results.update(cpu_figures("concurrent", await meter.per_message(n["concurrent"])))

        await client.call({}, "reset")
        started = time.perf_counter()
        await spread(n["casts"], lambda: client.cast({}, "count", value=ARG))
        await client.call({}, "wait_for", kind="casts", n=n["casts"])
        results["casts_per_s"] = n["casts"] / (time.perf_counter() - started)

        async with await relaybus.connect(args.url, confirm_casts=False) as blind_bus:
            blind = blind_bus.rpc_client(Target(topic=args.topic))
            await client.call({}, "reset")
            started = time.perf_counter()
            await spread(n["casts"], lambda: blind.cast({}, "count", value=ARG))
            await client.call({}, "wait_for", kind="casts", n=n["casts"])
            results["blind_casts_per_s"] = n["casts"] / (time.perf_counter() - started)

        notifier = bus.notifier("bench", topics=[f"{args.topic}_n"])
        await meter.start()
        started = time.perf_counter()
        await spread(n["notifications"],
                     lambda: notifier.info({}, "bench.event", {"pad": ARG}))
        await client.call({}, "wait_for", kind="notifications", n=n["notifications"])
        results["notifications_per_s"] = n["notifications"] / (time.perf_counter() - started)
        results.update(cpu_figures("notifications",
                                   await meter.per_message(n["notifications"])))
    return results


# -- raw nats-py ---------------------------------------------------------------------

async def raw_server(args: argparse.Namespace) -> None:
    counter = Counter()
    topic, stream = args.topic, f"RAW_{args.topic}"
    nc = await nats.connect(args.url)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{topic}.notify"])

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    async def cast(msg: Any) -> None:
        counter.bump("casts")

    async def wait_for(msg: Any) -> None:
        request = json.loads(msg.data)
        await msg.respond(str(await counter.wait(request["kind"], request["n"])).encode())

    async def reset(msg: Any) -> None:
        counter.reset()
        await msg.respond(b"")

    await nc.subscribe(f"{topic}.echo", queue="q", cb=echo)
    await nc.subscribe(f"{topic}.cast", queue="q", cb=cast)
    await nc.subscribe(f"{topic}.wait", cb=wait_for)
    async def cpu(msg: Any) -> None:
        await msg.respond(str(time.process_time()).encode())

    await nc.subscribe(f"{topic}.reset", cb=reset)
    await nc.subscribe(f"{topic}.cpu", cb=cpu)
    pull = await js.pull_subscribe(f"{topic}.notify", durable="bench", stream=stream)

    async def consume() -> None:
        while True:
            try:
                messages = await pull.fetch(64, timeout=1)
            except nats.errors.TimeoutError:
                continue
            for message in messages:
                counter.bump("notifications")
                await message.ack()

    consumer = asyncio.get_running_loop().create_task(consume(), name="raw.consume")
    await nc.flush()
    emit({"ready": True})
    await stdin_closed()
    consumer.cancel()
    await asyncio.wait([consumer])
    await js.delete_stream(stream)
    await nc.close()
    emit({"peak_rss_mb": peak_rss_mb()})


async def raw_client(args: argparse.Namespace) -> dict[str, float]:
    n = counts(args.scale)
    topic, body = args.topic, ARG.encode()
    results: dict[str, float] = {}
    nc = await nats.connect(args.url)
    js = nc.jetstream()

    async def server_cpu() -> float:
        return float((await nc.request(f"{topic}.cpu", b"", timeout=10)).data)

    meter = CpuMeter(server_cpu)
    for _ in range(n["warmup"]):
        await nc.request(f"{topic}.echo", body, timeout=10)
    latencies = []
    await meter.start()
    started = time.perf_counter()
    for _ in range(n["sequential"]):
        t0 = time.perf_counter()
        await nc.request(f"{topic}.echo", body, timeout=10)
        latencies.append(time.perf_counter() - t0)
    results.update(latency_figures(latencies, time.perf_counter() - started))
    results.update(cpu_figures("seq", await meter.per_message(n["sequential"])))

    async def call() -> None:
        if (await nc.request(f"{topic}.echo", body, timeout=60)).data != body:
            raise AssertionError("a reply did not match its request")

    await meter.start()
    started = time.perf_counter()
    await spread(n["concurrent"], call)
    results["concurrent_calls_per_s"] = n["concurrent"] / (time.perf_counter() - started)
    results.update(cpu_figures("concurrent", await meter.per_message(n["concurrent"])))

    async def wait_for(kind: str, count: int) -> None:
        await nc.request(f"{topic}.wait", json.dumps({"kind": kind, "n": count}).encode(),
                         timeout=300)

    await nc.request(f"{topic}.reset", b"", timeout=10)
    started = time.perf_counter()
    await spread(n["casts"], lambda: nc.publish(f"{topic}.cast", body))
    await wait_for("casts", n["casts"])
    results["casts_per_s"] = n["casts"] / (time.perf_counter() - started)
    results["blind_casts_per_s"] = results["casts_per_s"]  # raw casts are unconfirmed

    async def notify() -> None:
        # the same guarantee as relaybus's: a resent copy is dropped by JetStream
        await js.publish(f"{topic}.notify", body, timeout=60,
                         headers={"Nats-Msg-Id": os.urandom(16).hex()})

    await meter.start()
    started = time.perf_counter()
    await spread(n["notifications"], notify)
    await wait_for("notifications", n["notifications"])
    results["notifications_per_s"] = n["notifications"] / (time.perf_counter() - started)
    results.update(cpu_figures("notifications", await meter.per_message(n["notifications"])))
    await nc.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("library", choices=("relaybus", "raw"))
    parser.add_argument("role", choices=("server", "client"))
    parser.add_argument("--topic", required=True)
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    run: Any = asyncio.run
    if args.loop == "uvloop":
        import uvloop  # only when asked for: an optional extra
        run = uvloop.run
    if args.role == "server":
        run(relaybus_server(args) if args.library == "relaybus" else raw_server(args))
        return
    work = relaybus_client if args.library == "relaybus" else raw_client
    results = run(work(args))
    emit({"results": results, "peak_rss_mb": peak_rss_mb()})


if __name__ == "__main__":
    main()
