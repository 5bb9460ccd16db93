"""Scenario 3: a server is SIGKILLed while it runs a call.

Two servers share the topic; a call to a slow method lands on one of them, which is
killed as soon as it announces the start. The caller must get a typed error within its
timeout — sooner with call-monitor heartbeats — and the request must not run again on the
other server (requests are acknowledged on receipt: at most once).
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

from figures import Figures
from support import Events, ServerProcess, events_listener
from transports import unique

import relaybus
from relaybus import Target

CALL_TIMEOUT = 8.0
MONITOR = 2.0


async def _one(bus: relaybus.Bus, events: Events, topic: str, servers: dict[int, ServerProcess],
               figures: Figures, monitored: bool) -> None:
    token = uuid.uuid4().hex
    client = bus.rpc_client(Target(topic=topic), timeout=CALL_TIMEOUT,
                            call_monitor_timeout=MONITOR if monitored else None)
    call = asyncio.ensure_future(client.call({}, "slow", seconds=30, token=token))
    figures.sent += 1
    (started,) = await events.wait_for("reliability.started", token)
    figures.received += 1
    victim = servers.pop(started["pid"])
    killed_at = time.perf_counter()
    victim.kill(signal.SIGKILL)
    try:
        await call
        figures.check(f"call {'with' if monitored else 'without'} monitor failed", False)
        return
    except relaybus.MessagingTimeout as exc:
        figures.error(exc)
        elapsed = time.perf_counter() - killed_at
    label = "with call monitor" if monitored else "timeout only"
    figures.notes.append(f"{label}: typed error {elapsed:.2f} s after the kill")
    limit = MONITOR + 1.0 if monitored else CALL_TIMEOUT + 1.0
    figures.check(f"error within {limit:.0f} s ({label})", elapsed <= limit)
    if monitored:
        figures.recovery_s = elapsed
    # the survivor serves, and never started the killed request
    (survivor,) = servers.values()
    assert await client.prepare(call_monitor_timeout=None).call({}, "echo", value=1) == 1
    duplicates = events.count("reliability.started", token) - 1
    figures.duplicated += duplicates
    figures.check(f"ran once ({label})", duplicates == 0 and survivor.alive())


async def run(transport: str, url: str) -> Figures:
    figures = Figures("server killed mid-call", transport)
    for monitored in (False, True):
        topic = unique("srvkill")
        servers = {}
        try:
            for name in ("a", "b"):
                process = ServerProcess(url, topic, name)
                servers[process.pid] = process
            async with await relaybus.connect(url) as bus:
                events = Events()
                async with events_listener(bus, topic, events):
                    await _one(bus, events, topic, servers, figures, monitored)
        finally:
            for process in servers.values():
                process.kill(signal.SIGTERM)
    figures.lost = 0
    figures.notes.append(f"call timeout {CALL_TIMEOUT:.0f} s, call-monitor timeout "
                         f"{MONITOR:.0f} s")
    return figures
