"""The processes of the RabbitMQ benchmark: a server and a client for each library.

    python benchmarks/rabbit_peers.py {relaybus,oslo,raw} {server,client} --topic T [--scale S]

Run by benchmarks/rabbit_bench.py, one server process and one client process at a time.
They talk JSON lines on stdout (``{"ready": true}``, then results); a server stops when
its stdin closes. Every library does the same four workloads with the same counts:

1. sequential calls of ``echo`` with a ~200-byte argument (latency per call);
2. calls from 64 concurrent callers;
3. casts from 64 concurrent senders, until the server has received them all;
4. notifications from 64 concurrent senders, until the listener has received them all.

"Until received" is read from the server: after the senders finish, the client calls the
server's ``received`` method, which answers (with the server's monotonic clock, shared by
all processes on Linux) once the last message has arrived.

``raw`` is plain aio-pika as its documentation shows it: a request queue, an exclusive
reply queue with correlation ids, ``message.process()`` to acknowledge, confirms on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

URL = "rabbit://guest:guest@127.0.0.1:5672/"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
CONCURRENCY = 64
ARG = "x" * 200
COUNTS = {"sequential": 2000, "concurrent": 20000, "casts": 50000, "notifications": 50000}
WARMUP = 300


def counts(scale: float) -> dict[str, int]:
    return {name: max(int(n * scale), 10) for name, n in COUNTS.items()}


def emit(**data: Any) -> None:
    print(json.dumps(data), flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Tally:
    """Counts received messages; tells waiters (any thread) when a target is reached."""

    def __init__(self) -> None:
        self.count = {"casts": 0, "notifications": 0}
        self.last = {"casts": 0.0, "notifications": 0.0}
        self._lock = threading.Condition()

    def add(self, kind: str) -> None:
        with self._lock:
            self.count[kind] += 1
            self.last[kind] = time.monotonic()
            self._lock.notify_all()

    def wait_blocking(self, kind: str, n: int) -> float:
        with self._lock:
            self._lock.wait_for(lambda: self.count[kind] >= n, timeout=600)
            return self.last[kind]

    async def wait(self, kind: str, n: int) -> float:
        while self.count[kind] < n:  # noqa: ASYNC110 - polls what sends no event
            await asyncio.sleep(0.002)  # counted by another thread
        return self.last[kind]


# -- measuring (shared by the async clients) ------------------------------------------------

async def measure_async(call: Callable[[], Awaitable[Any]], cast: Callable[[], Awaitable[Any]],
                        notify: Callable[[], Awaitable[Any]],
                        received: Callable[[str, int], Awaitable[float]],
                        n: dict[str, int]) -> dict[str, float]:
    for _ in range(WARMUP):
        await call()
    latencies = []
    started = time.perf_counter()
    for _ in range(n["sequential"]):
        t = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - t)
    seq_elapsed = time.perf_counter() - started
    latencies.sort()
    results = {
        "seq_p50_us": latencies[len(latencies) // 2] * 1e6,
        "seq_p99_us": latencies[int(len(latencies) * 0.99)] * 1e6,
        "seq_calls_per_s": n["sequential"] / seq_elapsed,
    }

    async def together(total: int, one: Callable[[], Awaitable[Any]]) -> None:
        left = [total]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                await one()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    started = time.perf_counter()
    await together(n["concurrent"], call)
    results["concurrent_calls_per_s"] = n["concurrent"] / (time.perf_counter() - started)
    for kind, send in (("casts", cast), ("notifications", notify)):
        started_mono = time.monotonic()
        await together(n[kind], send)
        last = await received(kind, n[kind])
        results[f"{kind}_per_s"] = n[kind] / (last - started_mono)
    return results


# -- relaybus ---------------------------------------------------------------------------------

async def relaybus_server(topic: str) -> None:
    import relaybus
    from relaybus import Target

    tally = Tally()

    class Endpoint:
        async def echo(self, ctxt: Any, value: Any) -> Any:
            return value

        async def record(self, ctxt: Any, value: Any) -> None:
            tally.add("casts")

        async def received(self, ctxt: Any, kind: str, n: int) -> float:
            return await tally.wait(kind, n)

    class Listener:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: Any) -> None:
            tally.add("notifications")

    bus = await relaybus.connect(URL)
    async with bus.rpc_server(Target(topic=topic, server="s1"), [Endpoint()]), \
            bus.notification_listener([Target(topic=topic)], [Listener()]):
        emit(ready=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await bus.close()
    emit(peak_rss_mb=peak_rss_mb())


async def relaybus_client(topic: str, n: dict[str, int]) -> None:
    import relaybus
    from relaybus import Target

    bus = await relaybus.connect(URL)
    client = bus.rpc_client(Target(topic=topic), timeout=60)
    notifier = bus.notifier("bench.client", topics=[topic])

    async def received(kind: str, count: int) -> float:
        return await client.call({}, "received", kind=kind, n=count)

    results = await measure_async(
        lambda: client.call({}, "echo", value=ARG),
        lambda: client.cast({}, "record", value=ARG),
        lambda: notifier.info({}, "bench.event", {"value": ARG}),
        received, n)
    await bus.close()
    emit(results=results, peak_rss_mb=peak_rss_mb())


# -- raw aio-pika -------------------------------------------------------------------------------

async def raw_server(topic: str) -> None:
    import aio_pika

    tally = Tally()
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=256)
    requests = await channel.declare_queue(f"{topic}.raw.rpc", auto_delete=True)
    casts = await channel.declare_queue(f"{topic}.raw.casts", auto_delete=True)
    events = await channel.declare_queue(f"{topic}.raw.events", auto_delete=True)

    async def on_request(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            body = message.body
            if message.type == "received":
                kind, count = json.loads(body)
                body = json.dumps(await tally.wait(kind, count)).encode()
            await channel.default_exchange.publish(
                aio_pika.Message(body, correlation_id=message.correlation_id),
                routing_key=message.reply_to or "")

    async def on_cast(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            tally.add("casts")

    async def on_event(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            tally.add("notifications")

    await requests.consume(on_request)
    await casts.consume(on_cast)
    await events.consume(on_event)
    emit(ready=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await connection.close()
    emit(peak_rss_mb=peak_rss_mb())


async def raw_client(topic: str, n: dict[str, int]) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    replies = await channel.declare_queue(exclusive=True)
    waiting: dict[str, asyncio.Future[bytes]] = {}

    async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        future = waiting.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    await replies.consume(on_reply, no_ack=True)
    body = json.dumps({"value": ARG}).encode()

    async def call(payload: bytes = body, kind: str | None = None) -> bytes:
        correlation_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        waiting[correlation_id] = future
        await channel.default_exchange.publish(
            aio_pika.Message(payload, correlation_id=correlation_id, reply_to=replies.name,
                             type=kind), routing_key=f"{topic}.raw.rpc")
        return await future

    async def publish(queue: str) -> None:
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)

    async def received(kind: str, count: int) -> float:
        return json.loads(await call(json.dumps([kind, count]).encode(), "received"))

    results = await measure_async(call, lambda: publish(f"{topic}.raw.casts"),
                                  lambda: publish(f"{topic}.raw.events"), received, n)
    await connection.close()
    emit(results=results, peak_rss_mb=peak_rss_mb())


# -- oslo.messaging -------------------------------------------------------------------------------

def _oslo() -> tuple[Any, Any]:
    """oslo.messaging with defaults, but a send pool as big as the benchmark's senders."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import oslo_messaging
        from oslo_config import cfg
        from oslo_messaging._drivers import impl_rabbit
    cfg.CONF([], project="relaybus-bench", default_config_files=[], default_config_dirs=[])
    cfg.CONF.register_opts(impl_rabbit.rabbit_opts, group="oslo_messaging_rabbit")
    cfg.CONF.set_override("rpc_conn_pool_size", CONCURRENCY, group="oslo_messaging_rabbit")
    return oslo_messaging, cfg


def oslo_server(topic: str) -> None:
    om, cfg = _oslo()
    tally = Tally()

    class Endpoint:
        def echo(self, ctxt: Any, value: Any) -> Any:
            return value

        def record(self, ctxt: Any, value: Any) -> None:
            tally.add("casts")

        def received(self, ctxt: Any, kind: str, n: int) -> float:
            return tally.wait_blocking(kind, n)

    class Listener:
        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: Any) -> None:
            tally.add("notifications")

    rpc_transport = om.get_rpc_transport(cfg.CONF, url=URL)
    server = om.get_rpc_server(rpc_transport, om.Target(topic=topic, server="s1"),
                               [Endpoint()])
    notify_transport = om.get_notification_transport(cfg.CONF, url=URL)
    listener = om.get_notification_listener(notify_transport, [om.Target(topic=topic)],
                                            [Listener()])
    server.start()
    listener.start()
    emit(ready=True)
    sys.stdin.read()
    for consumer in (server, listener):
        consumer.stop()
        consumer.wait()
    rpc_transport.cleanup()
    notify_transport.cleanup()
    emit(peak_rss_mb=peak_rss_mb())


def oslo_client(topic: str, n: dict[str, int]) -> None:
    om, cfg = _oslo()
    transport = om.get_rpc_transport(cfg.CONF, url=URL)
    client = om.get_rpc_client(transport, om.Target(topic=topic), timeout=60)
    notify_transport = om.get_notification_transport(cfg.CONF, url=URL)
    notifier = om.Notifier(notify_transport, publisher_id="bench.client",
                           driver="messagingv2", topics=[topic])
    context = {"user": "bench"}

    def call() -> Any:
        return client.call(context, "echo", value=ARG)

    for _ in range(WARMUP):
        call()
    latencies = []
    started = time.perf_counter()
    for _ in range(n["sequential"]):
        t = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t)
    seq_elapsed = time.perf_counter() - started
    latencies.sort()
    results = {
        "seq_p50_us": latencies[len(latencies) // 2] * 1e6,
        "seq_p99_us": latencies[int(len(latencies) * 0.99)] * 1e6,
        "seq_calls_per_s": n["sequential"] / seq_elapsed,
    }
    with ThreadPoolExecutor(CONCURRENCY) as threads:
        started = time.perf_counter()
        list(threads.map(lambda _: call(), range(n["concurrent"])))
        results["concurrent_calls_per_s"] = n["concurrent"] / (time.perf_counter() - started)
        sends = {"casts": lambda _: client.cast(context, "record", value=ARG),
                 "notifications": lambda _: notifier.info(context, "bench.event",
                                                          {"value": ARG})}
        for kind, send in sends.items():
            started_mono = time.monotonic()
            list(threads.map(send, range(n[kind])))
            last = client.call(context, "received", kind=kind, n=n[kind])
            results[f"{kind}_per_s"] = n[kind] / (last - started_mono)
    transport.cleanup()
    notify_transport.cleanup()
    emit(results=results, peak_rss_mb=peak_rss_mb())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("library", choices=["relaybus", "oslo", "raw"])
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--uvloop", action="store_true", help="run asyncio on uvloop")
    args = parser.parse_args()
    n = counts(args.scale)
    if args.library == "oslo":
        (oslo_server(args.topic) if args.role == "server" else oslo_client(args.topic, n))
        return
    if args.uvloop:
        import uvloop

        uvloop.install()
    run = {("relaybus", "server"): lambda: relaybus_server(args.topic),
           ("relaybus", "client"): lambda: relaybus_client(args.topic, n),
           ("raw", "server"): lambda: raw_server(args.topic),
           ("raw", "client"): lambda: raw_client(args.topic, n)}[(args.library, args.role)]
    asyncio.run(run())


if __name__ == "__main__":
    main()
