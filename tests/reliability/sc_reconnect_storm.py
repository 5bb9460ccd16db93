"""Scenario 8: a hundred clients and a broker restart.

A hundred buses, each serving RPC, sit behind a proxy that counts connection attempts.
The broker is killed and started again: attempts per second must stay bounded (capped,
jittered backoff, no hot loop, no thundering herd) and every server must come back —
counted on the broker side, and by a directed call to each.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

from figures import Figures
from instances import NatsInstance, RabbitInstance, free_port
from proxy import CountingProxy
from rabbitctl import rabbitmqctl
from transports import unique

import relaybus
from relaybus import Target

CLIENTS = 100  # each retries at once, then after reconnect_delay (0.5 s) doubling, jittered
COME_BACK = 60.0


class Echo:
    async def echo(self, ctxt: Any, value: Any) -> Any:
        return value


def _broker_consumers(transport: str, broker: Any, monitor_port: int | None) -> int:
    if transport == "rabbit":
        lines = rabbitmqctl("-n", broker.node, "list_consumers", "--no-table-headers",
                            "queue_name").splitlines()
        return len([line for line in lines if line.strip()])
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/connz", timeout=5) as page:
        return int(json.load(page)["num_connections"])


async def run(transport: str, url: str) -> Figures:
    figures = Figures("reconnect storm", transport)
    monitor_port = free_port() if transport == "nats" else None
    broker = (RabbitInstance() if transport == "rabbit"
              else NatsInstance("-m", str(monitor_port)))
    proxy = CountingProxy(broker.port)
    await proxy.start()
    topic = unique("storm")
    buses: list[relaybus.Bus] = []
    scheme_url = (f"rabbit://guest:guest@127.0.0.1:{proxy.port}/" if transport == "rabbit"
                  else f"nats://127.0.0.1:{proxy.port}")
    try:
        for i in range(CLIENTS):
            bus = await relaybus.connect(scheme_url)
            buses.append(bus)
            await bus.rpc_server(Target(topic=topic, server=f"c{i}"), [Echo()]).start()
        before = await asyncio.to_thread(_broker_consumers, transport, broker, monitor_port)
        killed = time.monotonic()
        await asyncio.to_thread(broker.kill)
        await asyncio.to_thread(broker.start)
        up = time.monotonic()
        figures.notes.append(f"broker down for {up - killed:.1f} s")
        async with await relaybus.connect(scheme_url) as checker:
            client = checker.rpc_client(Target(topic=topic), timeout=5)
            pending = set(range(CLIENTS))
            deadline = time.monotonic() + COME_BACK
            while pending and time.monotonic() < deadline:
                for i in sorted(pending):
                    try:
                        await client.prepare(server=f"c{i}").call({}, "echo", value=i)
                        pending.discard(i)
                    except relaybus.MessagingError as exc:
                        figures.error(exc)
                if pending:
                    await asyncio.sleep(0.5)  # servers still reconnecting: ask again soon
            back = time.monotonic()
            after = await asyncio.to_thread(_broker_consumers, transport, broker, monitor_port)
        figures.sent = figures.received = CLIENTS
        figures.lost = len(pending)
        figures.recovery_s = back - up
        rates = proxy.per_second(killed, back)
        figures.check("every server answers again", not pending)
        figures.check("broker counts as many consumers as before",
                      after >= before if transport == "rabbit" else after >= CLIENTS)
        # the drivers retry at once, then after 0.5 s doubling with jitter: at most about
        # three attempts per client in the first second, fewer each second after
        figures.check(f"attempts per second stay under {CLIENTS * 3}", max(rates) <= CLIENTS * 3)
        figures.check("attempts thin out as backoff grows",
                      len(rates) == 1 or rates[-1] < rates[0])
        figures.notes.append(f"broker-side consumers before/after: {before}/{after}; "
                             f"connection attempts per second from the kill on: {rates}")
    finally:
        for bus in buses:
            await bus.close()
        await proxy.close()
        broker.stop()
    return figures
