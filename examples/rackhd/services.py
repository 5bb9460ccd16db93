"""RackHD's bus conventions, described as relaybus Services.

RackHD documented its AMQP bus by hand: nine exchanges, RPC routing keys ``methods.<name>``,
events such as ``graph.finished.<graphid>``, logging by level. Here each RPC exchange is a
Service whose Target names that exchange; a ``methods.<name>`` routing key becomes method
``<name>`` (relaybus carries the method in the message, so one queue serves them all).
Events and log lines are notifications on their exchanges, with the ids in the event type.
``relaybus docs examples.rackhd.services:dhcp`` writes the AsyncAPI document of one of them;
:data:`SERVICES` lists all nine.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

import relaybus
from relaybus import Service, Target


class Lease(msgspec.Struct):
    mac: str
    ip: str
    pinned: bool = False


class LogLine(msgspec.Struct):
    module: str
    message: str
    context: dict[str, Any] = {}


class NodeEvent(msgspec.Struct):
    node_id: str


class GraphEvent(msgspec.Struct):
    graph_id: str
    graph_name: str
    status: str = "running"


class TaskEvent(msgspec.Struct):
    task_id: str
    graph_id: str
    state: str


class Dhcp:
    """Interrogating the DHCP service's lease table."""

    target = Target(namespace="dhcp", version="1.0")

    def __init__(self) -> None:
        self.leases: dict[str, Lease] = {}

    def lookupIpLease(self, ctxt: Any, ip: str) -> Lease | None:  # noqa: N802 - RackHD's names
        """The lease holding an IP address, if any."""
        return next((lease for lease in self.leases.values() if lease.ip == ip), None)

    def ipInRange(self, ctxt: Any, ip: str) -> bool:  # noqa: N802
        """Whether an address is in the DHCP range (10.1.0.0/16 here)."""
        return ip.startswith("10.1.")

    def peekLeaseTable(self, ctxt: Any) -> list[Lease]:  # noqa: N802
        """Every lease."""
        return sorted(self.leases.values(), key=lambda lease: lease.ip)

    def pinMac(self, ctxt: Any, mac: str, ip: str) -> Lease:  # noqa: N802
        """Give a MAC address a fixed IP address."""
        lease = self.leases[mac] = Lease(mac, ip, pinned=True)
        return lease

    def unpinMac(self, ctxt: Any, mac: str) -> bool:  # noqa: N802
        """Remove a MAC address's fixed lease; False if it had none."""
        return self.leases.pop(mac, None) is not None

    def removeLease(self, ctxt: Any, mac: str) -> bool:  # noqa: N802
        """Forget a lease."""
        return self.leases.pop(mac, None) is not None


class TaskGraphRunner:
    """Running workflows (task graphs); announces each graph on the events exchange."""

    target = Target(namespace="task-graph-runner", version="1.0")

    def __init__(self, events: relaybus.Notifier | None = None) -> None:
        self.events = events
        self.running: dict[str, GraphEvent] = {}

    def getTaskGraphLibrary(self, ctxt: Any) -> list[str]:  # noqa: N802
        """The names of the graphs that can run."""
        return ["Graph.Discovery", "Graph.Reboot"]

    async def runTaskGraph(self, ctxt: Any, graph_name: str, node_id: str) -> str:  # noqa: N802
        """Run a graph on a node; emits graph.started.<id> and graph.finished.<id>."""
        graph_id = uuid.uuid4().hex[:12]
        started = GraphEvent(graph_id, graph_name)
        self.running[graph_id] = started
        if self.events is not None:
            await self.events.info(ctxt, f"graph.started.{graph_id}", started)
            await self.events.info(ctxt, f"graph.finished.{graph_id}",
                                   GraphEvent(graph_id, graph_name, status="succeeded"))
        del self.running[graph_id]
        return graph_id

    def getActiveTaskGraphs(self, ctxt: Any) -> list[GraphEvent]:  # noqa: N802
        """The graphs running now."""
        return list(self.running.values())

    def cancelTaskGraph(self, ctxt: Any, graph_id: str) -> bool:  # noqa: N802
        """Cancel a running graph; False if it is not running."""
        return self.running.pop(graph_id, None) is not None


class Configuration:
    """Dynamic system configuration."""

    target = Target(namespace="configuration", version="1.0")

    def set(self, ctxt: Any, key: str, value: Any) -> None:
        """Set a configuration value."""

    def get(self, ctxt: Any, key: str) -> Any:
        """Read a configuration value."""


class Scheduler:
    """Scheduling tasks within a workflow."""

    def schedule(self, ctxt: Any, task_id: str, graph_id: str) -> None:
        """Queue a task of a graph to run."""


class Task:
    """Tasks interrogating their workflow."""

    def requestProfile(self, ctxt: Any, node_id: str) -> str:  # noqa: N802
        """The boot profile for a node."""
        return "ipxe"

    def requestProperties(self, ctxt: Any, node_id: str) -> dict[str, Any]:  # noqa: N802
        """The properties of a node's active task."""
        return {}

    def activeTaskExists(self, ctxt: Any, node_id: str) -> bool:  # noqa: N802
        """Whether a node has an active task."""
        return False


class Http:
    """The HTTP service's RPC face (nothing but events in RackHD)."""

    def ping(self, ctxt: Any) -> str:
        """Liveness."""
        return "pong"


class Tftp:
    """The TFTP service (RackHD defines no routing keys for it)."""

    def ping(self, ctxt: Any) -> str:
        """Liveness."""
        return "pong"


# RackHD's logging levels, and the relaybus priority each is sent with.
LOG_LEVELS = {"emerg": "critical", "alert": "critical", "error": "error",
              "warning": "warn", "notice": "info", "info": "info", "debug": "debug",
              "silly": "debug"}

dhcp = Service("dhcp", Target(exchange="on.dhcp", topic="dhcp"), [Dhcp()],
               description="RPC channel for interrogating the DHCP service.")
task_graph_runner = Service(
    "task-graph-runner", Target(exchange="on.taskgraph", topic="task-graph-runner"),
    [TaskGraphRunner()],
    emits={"graph.started.<graphid>": GraphEvent, "graph.finished.<graphid>": GraphEvent},
    notification_topic="events",
    description="RPC mechanism for communicating with the process running workflows.")
configuration = Service("configuration", Target(exchange="on.configuration",
                                                topic="configuration"), [Configuration()],
                        description="RPC channel for dynamic configuration changes.")
scheduler = Service("scheduler", Target(exchange="on.scheduler", topic="scheduler"),
                    [Scheduler()], description="Scheduling tasks within a workflow.")
task = Service("task", Target(exchange="on.task", topic="task"), [Task()],
               description="Tasks interrogating or interacting with workflows.")
http = Service("http", Target(exchange="on.http", topic="http"), [Http()],
               emits={"http.response.<nodeid>": NodeEvent},
               description="The HTTP service.")
tftp = Service("tftp", Target(exchange="on.tftp", topic="tftp"), [Tftp()],
               emits={"tftp.success.<nodeid>": NodeEvent, "tftp.failure.<nodeid>": NodeEvent},
               description="The TFTP service.")
events = Service(
    "events", Target(exchange="on.events", topic="events"), [], notification_topic="events",
    emits={"tftp.success.<nodeid>": NodeEvent, "tftp.failure.<nodeid>": NodeEvent,
           "http.response.<nodeid>": NodeEvent, "dhcp.bind.success.<nodeid>": NodeEvent,
           "task.finished.<taskid>": TaskEvent, "graph.started.<graphid>": GraphEvent,
           "graph.finished.<graphid>": GraphEvent, "sku.assigned.<nodeid>": NodeEvent},
    description="One-to-many broadcast of events applicable to workflows and reactions.")
logging = Service(
    "logging", Target(exchange="on.logging", topic="logging"), [], notification_topic="logging",
    emits={f"log.{level}": (LogLine, priority) for level, priority in LOG_LEVELS.items()},
    description="Log lines, by level.")

SERVICES = [configuration, events, http, dhcp, tftp, logging, task_graph_runner, scheduler,
            task]
