"""Plain nats-py doing ``relaybus bench``'s NATS workloads, for the ratios it prints.

The peer is nats-py as its documentation shows it, in the same process as the bench and on
one connection, as the bus there: request/reply with ``msg.respond`` and the 200-byte
body alone (no oslo envelope, ids or checks), and notifications published with
``JetStreamContext.publish`` (a ``Nats-Msg-Id`` header each, so that JetStream drops a
resent copy, as it does relaybus's) to a stream of its own, read by a durable pull
consumer that fetches 64 at a time and acknowledges each message after its handler.
:func:`run` returns its figures under the names relaybus's own have in
:mod:`relaybus.bench`, prefixed ``raw nats-py``.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import nats
import nats.errors
from nats.aio.msg import Msg

from relaybus.drivers.nats.driver import NatsDriver
from relaybus.drivers.nats.options import server_list

PREFIX = "raw nats-py "
BATCH = 64
CALLERS = 64


async def _sequential(nc: Any, subject: str, body: bytes, n: int) -> dict[str, float]:
    latencies = []
    cpu = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        await nc.request(subject, body, timeout=60)
        latencies.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu
    latencies.sort()
    return {"sequential p50_us": latencies[len(latencies) // 2] * 1e6,
            "sequential cpu_us": cpu / n * 1e6}


async def _concurrent(nc: Any, subject: str, body: bytes, n: int) -> dict[str, float]:
    per_caller = max(n // CALLERS, 1)

    async def caller() -> None:
        for _ in range(per_caller):
            if (await nc.request(subject, body, timeout=60)).data != body:
                raise AssertionError("a reply did not match its request")

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return {"64 callers calls_s": per_caller * CALLERS / (time.perf_counter() - started)}


async def _notifications(nc: Any, topic: str, body: bytes, n: int) -> dict[str, float]:
    js = nc.jetstream()
    stream, subject = f"RAWBENCH_{topic}", f"rawbench.{topic}.notify"
    await js.add_stream(name=stream, subjects=[subject])
    try:
        pull = await js.pull_subscribe(subject, durable="bench", stream=stream)
        received = 0
        done = asyncio.Event()

        async def consume() -> None:
            nonlocal received
            while received < n:
                try:
                    messages = await pull.fetch(BATCH, timeout=1)
                except nats.errors.TimeoutError:
                    continue
                for message in messages:
                    received += 1  # the handler
                    await message.ack()
            done.set()

        consumer = asyncio.get_running_loop().create_task(consume(),
                                                          name="relaybus.bench.raw-consumer")
        try:
            started = time.perf_counter()
            for _ in range(n):
                await js.publish(subject, body, timeout=60,
                                 headers={"Nats-Msg-Id": os.urandom(16).hex()})
            await done.wait()
            elapsed = time.perf_counter() - started
        finally:
            consumer.cancel()
            await asyncio.wait([consumer])
    finally:
        await js.delete_stream(stream)
    return {"notifications msgs_s": n / elapsed}


def connect_options(driver: NatsDriver) -> dict[str, Any]:
    """nats-py's options for the servers and credentials ``driver`` uses."""
    servers = server_list(driver.url, driver.nats_options)
    options: dict[str, Any] = {"servers": servers.servers, "allow_reconnect": False}
    if servers.user is not None:
        options["user"], options["password"] = servers.user, servers.password
    if servers.token is not None:
        options["token"] = servers.token
    if driver.nats_options.creds_file:
        options["user_credentials"] = driver.nats_options.creds_file
    if driver.nats_options.nkeys_seed_file:
        options["nkeys_seed"] = driver.nats_options.nkeys_seed_file
    context = driver.nats_options.ssl_context(driver.url.masked())
    if context is not None:
        options["tls"] = context
    return options


async def run(driver: NatsDriver, counts: dict[str, int]) -> dict[str, float]:
    """One round of the peer's workloads on the NATS servers of ``driver`` (``counts`` as
    in :func:`relaybus.bench.run`)."""
    topic = uuid.uuid4().hex[:8]
    subject, body = f"rawbench.{topic}.echo", b"x" * 200
    nc = await nats.connect(**connect_options(driver))
    try:
        async def echo(msg: Msg) -> None:
            await msg.respond(msg.data)

        await nc.subscribe(subject, queue="bench", cb=echo)
        await nc.flush()
        figures = await _sequential(nc, subject, body, counts["sequential calls"])
        figures.update(await _concurrent(nc, subject, body, counts["64 concurrent callers"]))
        figures.update(await _notifications(nc, topic, body, counts["notifications"]))
    finally:
        await nc.close()
    return {PREFIX + name: value for name, value in figures.items()}
