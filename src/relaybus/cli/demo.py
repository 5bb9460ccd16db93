"""``relaybus demo``: a small nova-like scenario, run end to end and reported.

Three compute servers share a topic; a scheduler client calls them round-robin, calls one
by name, casts to all of them (fanout), gets an error back with its type intact; every
compute host emits notifications, which two listener pools each receive in full. Uses
only the public API, so it runs on any transport URL.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console
from rich.table import Table

import relaybus
from relaybus import Target, loops
from relaybus.cli.common import CommandError, settings_from, url_option
from relaybus.cli.console_demo import run_console_demo
from relaybus.cli.demo_services import HOSTS, ComputeManager, InstanceNotFound

ROUND_ROBIN_CALLS = 9
NOTIFICATIONS_PER_HOST = 2


@dataclass
class PoolRecorder:
    """A notification endpoint that counts what its pool member received."""

    pool: str
    seen: collections.Counter[str] = field(default_factory=collections.Counter)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict[str, Any]) -> None:
        self.seen[metadata["message_id"]] += 1
        if len(self.seen) >= self.expected:
            self.done.set()


@dataclass
class Step:
    what: str
    outcome: str
    millis: float


async def run_demo(url: str | None) -> tuple[list[Step], relaybus.TransportURL]:
    """Run the scenario; return what happened, step by step."""
    run_id = uuid.uuid4().hex[:8]
    topic, notif_topic = f"compute_{run_id}", f"notifications_{run_id}"
    steps: list[Step] = []

    def record(what: str, outcome: str, started: float) -> None:
        steps.append(Step(what, outcome, (time.perf_counter() - started) * 1000))

    async with await relaybus.connect(url) as bus:
        capabilities: dict[str, dict[str, Any]] = {}
        all_updated = asyncio.Event()
        expected = ROUND_ROBIN_CALLS + 1
        pools = [PoolRecorder("metering", expected=expected),
                 PoolRecorder("audit", expected=expected)]
        for pool in pools:
            await bus.notification_listener([Target(topic=notif_topic)], [pool],
                                            pool=pool.pool).start()
        for host in HOSTS:
            notifier = bus.notifier(f"compute.{host}", topics=[notif_topic])
            await bus.rpc_server(Target(topic=topic, server=host),
                                 [ComputeManager(host, notifier, capabilities,
                                                 all_updated)]).start()

        scheduler = bus.rpc_client(Target(topic=topic, namespace="compute", version="1.0"),
                                   timeout=10, allowed_remote_exmods=[InstanceNotFound.__module__])
        ctxt = {"user": "admin", "request_id": f"req-{run_id}"}

        started = time.perf_counter()
        hosts: collections.Counter[str] = collections.Counter()
        for instance_id in range(ROUND_ROBIN_CALLS):
            result = await scheduler.call(ctxt, "run_instance", instance_id=instance_id,
                                          request_spec={"flavor": "m1.small"})
            hosts[result["host"]] += 1
        record(f"{ROUND_ROBIN_CALLS} round-robin calls to run_instance",
               ", ".join(f"{h}: {hosts[h]}" for h in HOSTS), started)

        started = time.perf_counter()
        result = await scheduler.prepare(server="host2", version="1.3").call(
            ctxt, "run_instance", instance_id=100, request_spec={})
        record("directed call to host2 (version 1.3)", f"served by {result['host']}", started)

        started = time.perf_counter()
        await scheduler.prepare(fanout=True).cast(ctxt, "update_capabilities",
                                                  caps={"vcpus": 8})
        await asyncio.wait_for(all_updated.wait(), 10)
        record("fanout cast update_capabilities", f"{len(capabilities)} hosts updated", started)

        started = time.perf_counter()
        try:
            await scheduler.prepare(server="host1").call(ctxt, "get_instance", instance_id=100)
            outcome = "no error (unexpected)"
        except InstanceNotFound as exc:
            outcome = f"{type(exc).__mro__[1].__name__}: {exc}"
        record("call that fails on the server", outcome, started)

        started = time.perf_counter()
        try:
            await scheduler.prepare(version="2.0").call(ctxt, "run_instance", instance_id=1,
                                                        request_spec={})
            outcome = "accepted (unexpected)"
        except relaybus.UnsupportedVersion as exc:
            outcome = f"UnsupportedVersion: {exc}"
        record("call asking for version 2.0", outcome, started)

        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(p.done.wait() for p in pools)), 10)
        record("notifications compute.instance.create.end",
               ", ".join(f"pool {p.pool}: {len(p.seen)}/{expected}" for p in pools), started)

        started = time.perf_counter()
        directed = scheduler.prepare(server="host2")
        latencies = []
        for _ in range(200):
            t0 = time.perf_counter()
            await directed.call(ctxt, "get_instance", instance_id=100)
            latencies.append(time.perf_counter() - t0)
        latencies.sort()
        record("200 sequential calls", f"p50 {latencies[100] * 1e6:.0f} µs, "
               f"p99 {latencies[197] * 1e6:.0f} µs", started)
        return steps, bus.url


@click.command()
@url_option
@click.option("--console", "web_console", is_flag=True,
              help="Keep the services running and notifying, with the firehose gateway and "
                   "its web console attached (Ctrl-C stops).")
@click.option("--http", default="127.0.0.1:8765", show_default=True,
              help="With --console: where the console listens (port 0: any free port).")
@click.pass_context
def demo(ctx: click.Context, url: str | None, web_console: bool, http: str) -> None:
    """Run a small nova-like scenario and report what happened.

    Exit codes: 0 done, 2 bad input, 3 a timeout, 5 transport failure.
    """
    url = settings_from(ctx, url=url).url
    if web_console:
        run_console_demo(url, http)
        return
    console = Console()
    try:
        steps, used = loops.run(run_demo(url))
    except (relaybus.MessagingError, ValueError) as exc:
        raise CommandError.of(exc) from None
    table = Table(title=f"relaybus demo on {used}")
    table.add_column("step")
    table.add_column("outcome")
    table.add_column("ms", justify="right")
    for step in steps:
        table.add_row(step.what, step.outcome, f"{step.millis:.1f}")
    console.print(table)
    console.print(f"3 compute servers, 1 scheduler client, 2 listener pools: "
                  f"{len(steps)} steps done.")
