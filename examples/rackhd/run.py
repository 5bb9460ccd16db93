"""A working slice of the RackHD bus: DHCP RPC, a task-graph runner, and a graph watcher.

    python -m examples.rackhd.run [--url URL]

The DHCP service and the task-graph runner serve RPC on their own exchanges; the runner
announces each graph on the ``on.events`` exchange (a bus whose control exchange is
``on.events``), where a watcher takes every ``graph.started.*`` / ``graph.finished.*``
event through a wildcard filter, the way RackHD's listeners bind ``graph.#``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import relaybus
from examples.rackhd.services import Dhcp, GraphEvent, TaskGraphRunner, dhcp, task_graph_runner
from relaybus import Target


class GraphWatcher:
    """Receives every graph event, whatever its graph id."""

    filter_rule = relaybus.NotificationFilter(event_type=r"^graph\.(started|finished)\.")

    def __init__(self, expected: int) -> None:
        self.seen: list[tuple[str, GraphEvent]] = []
        self.expected = expected
        self.done = asyncio.Event()

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: GraphEvent,
                   metadata: dict[str, Any]) -> None:
        self.seen.append((event_type, payload))
        if len(self.seen) >= self.expected:
            self.done.set()


async def run(url: str | None = None) -> dict[str, Any]:
    """Run the slice; returns what each side saw."""
    async with await relaybus.connect(url) as rpc_bus, \
            await relaybus.connect(url, control_exchange="on.events") as events_bus:
        watcher = GraphWatcher(expected=4)
        runner = TaskGraphRunner(events_bus.notifier("task-graph-runner.host1",
                                                     topics=["events"]))
        async with events_bus.notification_listener([Target(topic="events")], [watcher],
                                                    pool="graph-watchers"), \
                rpc_bus.rpc_server(dhcp.target.replace(server="host1"), [Dhcp()]), \
                rpc_bus.rpc_server(task_graph_runner.target.replace(server="host1"), [runner]):
            dhcp_client = rpc_bus.rpc_client(dhcp.target.replace(namespace="dhcp"), timeout=10)
            graphs = rpc_bus.rpc_client(task_graph_runner.target.replace(
                namespace="task-graph-runner"), timeout=10)
            pinned = await dhcp_client.call({}, "pinMac", mac="52:54:00:aa:bb:01",
                                            ip="10.1.0.17")
            lease = await dhcp_client.call({}, "lookupIpLease", ip="10.1.0.17")
            in_range = await dhcp_client.call({}, "ipInRange", ip="192.168.0.1")
            graph_ids = [await graphs.call({}, "runTaskGraph", graph_name=name,
                                           node_id="node-1")
                         for name in ("Graph.Discovery", "Graph.Reboot")]
            await asyncio.wait_for(watcher.done.wait(), 10)
    return {"pinned": pinned, "lease": lease, "in_range": in_range, "graph_ids": graph_ids,
            "events": [(event_type, payload.status) for event_type, payload in watcher.seen]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="transport URL (default memory://)")
    result = asyncio.run(run(parser.parse_args().url))
    print(f"pinned lease:     {result['pinned']}")
    print(f"lookupIpLease:    {result['lease']}")
    print(f"ipInRange:        192.168.0.1 -> {result['in_range']}")
    print(f"graphs run:       {', '.join(result['graph_ids'])}")
    for event_type, status in result["events"]:
        print(f"watcher saw:      {event_type} ({status})")


if __name__ == "__main__":
    main()
