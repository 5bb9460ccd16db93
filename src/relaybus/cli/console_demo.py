"""``relaybus demo --console``: the demo's services, busy for ever, with the gateway attached.

The compute services are the demo's own (:mod:`relaybus.cli.demo_services`); the gateway
runs as ``relaybus firehose`` runs it (:mod:`relaybus.cli.gateway_run`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from typing import Any

import relaybus
from relaybus import Target
from relaybus.cli import gateway_run
from relaybus.cli.demo_services import HOSTS, ComputeManager

DEMO_TOPIC = "notifications"
DEMO_EXCHANGE = "nova"


async def console_demo(url: str | None, http: str, *, interval: float = 0.5,
                       stop: asyncio.Event | None = None) -> None:
    """The demo's compute services and scheduler, busy for ever, with the gateway attached."""
    gateway_module = gateway_run.gateway_module()
    stop = stop or asyncio.Event()
    options: dict[str, Any] = {}
    if "control_exchange" not in relaybus.parse_url(url or "memory://").query:
        options["control_exchange"] = DEMO_EXCHANGE
    async with await relaybus.connect(url, **options) as bus:
        capabilities: dict[str, dict[str, Any]] = {}
        for host in HOSTS:
            notifier = bus.notifier(f"compute.{host}", topics=[DEMO_TOPIC])
            await bus.rpc_server(Target(topic="compute", server=host),
                                 [ComputeManager(host, notifier, capabilities,
                                                 asyncio.Event())]).start()
        scheduler = bus.rpc_client(Target(topic="compute", namespace="compute",
                                          version="1.0"), timeout=10)
        events = bus.notifier("scheduler.host1", topics=[DEMO_TOPIC])
        gateway = gateway_module.Gateway(bus, gateway_module.GatewayOptions(
            topics=[DEMO_TOPIC], http=http))
        async with gateway.running():
            gateway_run.announce(gateway, bus, "\nthe demo's services are running and notifying; "
                                    "Ctrl-C stops")
            with gateway_run.stop_on_signals(stop):
                await _keep_busy(scheduler, events, interval, stop)


async def _keep_busy(scheduler: relaybus.RPCClient, events: relaybus.Notifier,
                     interval: float, stop: asyncio.Event) -> None:
    """Schedule instances round-robin (each compute host notifies), and sometimes fail."""
    for instance_id in itertools.count(1):
        ctxt = {"user": "admin", "request_id": f"req-{instance_id}"}
        spec = {"flavor": random.choice(["m1.small", "m1.large"])}
        await events.info(ctxt, "scheduler.select_destinations.start", spec)
        result = await scheduler.call(ctxt, "run_instance", instance_id=instance_id,
                                      request_spec=spec)
        await events.info(ctxt, "scheduler.select_destinations.end",
                          {"instance_id": instance_id, "host": result["host"]})
        if instance_id % 7 == 0:
            await events.error(ctxt, "compute.instance.create.error",
                               {"instance_id": instance_id, "reason": "No valid host"})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
        if stop.is_set():
            return


def run_console_demo(url: str | None, http: str) -> None:
    """``relaybus demo --console``."""
    gateway_run.run(lambda: console_demo(url, http))
