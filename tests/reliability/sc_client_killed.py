"""Scenario 4: callers are SIGKILLed while they wait for their calls.

The server must neither block nor crash: it finishes the orphaned calls, their replies go
nowhere, and it answers a new call at once. On RabbitMQ the dead callers' reply queues
must be gone once their expiry (here 2 s) passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import uuid

from figures import Figures
from rabbitctl import own_vhost, queues
from support import HERE, Events, ServerProcess, environment, events_listener
from transports import unique

import relaybus
from relaybus import Target

CALLERS = 20
REPLY_QUEUE_TTL = 2


async def run(transport: str, url: str) -> Figures:
    figures = Figures("client killed mid-call", transport)
    with own_vhost(url) if transport == "rabbit" else contextlib.nullcontext(
            (None, url)) as (vhost, scoped_url):
        topic = unique("clikill")
        server = ServerProcess(scoped_url, topic, "a")
        caller_url = (f"{scoped_url}?rabbit_transient_queues_ttl={REPLY_QUEUE_TTL}"
                      if transport == "rabbit" else scoped_url)
        callers = []
        try:
            async with await relaybus.connect(caller_url) as bus:
                events = Events()
                async with events_listener(bus, topic, events):
                    tokens = [uuid.uuid4().hex for _ in range(CALLERS)]
                    callers = [subprocess.Popen(  # noqa: ASYNC220 - starting a child is quick
                        [sys.executable, str(HERE / "caller.py"), caller_url, topic, token],
                        env=environment(scoped_url, topic), stderr=subprocess.DEVNULL)
                        for token in tokens]
                    figures.sent = CALLERS
                    await events.wait_for("reliability.started", n=CALLERS, timeout=120)
                    figures.received = events.count("reliability.started")
                    for caller in callers:
                        caller.kill()
                        caller.wait()
                    killed = time.perf_counter()
                    client = bus.rpc_client(Target(topic=topic), timeout=10)
                    assert await client.call({}, "echo", value="still here") == "still here"
                    figures.recovery_s = time.perf_counter() - killed
                    await events.wait_for("reliability.finished", n=CALLERS, timeout=30)
                    figures.check("server finished every orphaned call",
                                  events.count("reliability.finished") == CALLERS)
                    figures.check("server answers at once after the kill",
                                  figures.recovery_s < 1.0)
                    figures.check("server alive", server.alive())
            if vhost is not None:
                deadline = time.monotonic() + REPLY_QUEUE_TTL + 20
                while queues(vhost, "reply_") and time.monotonic() < deadline:  # noqa: ASYNC110 - polls what sends no event
                    await asyncio.sleep(0.5)  # the broker sends no event
                left = queues(vhost, "reply_")
                figures.check("no reply queue left after expiry", not left)
                figures.notes.append(f"{len(left)} reply queue(s) left "
                                     f"{REPLY_QUEUE_TTL} s+ after the callers died")
        finally:
            for caller in callers:
                if caller.poll() is None:
                    caller.kill()
                    caller.wait()
            server.kill(signal.SIGTERM)
    figures.notes.append(f"{CALLERS} callers killed while waiting; a new call answered "
                         f"{figures.recovery_s:.3f} s later")
    return figures
