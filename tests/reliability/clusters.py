"""Three-node clusters of a scenario's own on loopback: nats-server with JetStream, RabbitMQ.

Each node is a broker process of its own (own ports, own data directory under one temp
directory) that the scenario may SIGKILL and start again; the shared brokers stay
untouched. What the scenario asks a cluster is answered by the brokers themselves: which
node a client is attached to (NATS ``/connz``, ``rabbitmqctl list_connections``) and what
consumes (``/connz?subs=1`` and JetStream consumer info, ``rabbitmqctl list_queues``).

``stop()`` kills every node and removes the temp directory; constructors clean up after
themselves when the cluster does not form.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from instances import RabbitInstance, _Instance, free_port

READY_TIMEOUT = 60.0


def _poll(what: str, ready: Any, timeout: float) -> None:
    """Call ``ready()`` until it is true; TimeoutError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout} s")
        time.sleep(0.1)  # brokers send no event when they are ready: polling


# -- NATS ------------------------------------------------------------------------------


class NatsNode(_Instance):
    """One nats-server of a cluster: JetStream on, a route to every other node."""

    def __init__(self, base: Path, index: int, cluster_name: str) -> None:
        self.index = index
        self.name = f"n{index}"
        self.port, self.route_port, self.http_port = free_port(), free_port(), free_port()
        self.dir = base / self.name
        self.dir.mkdir()
        self.cluster_name = cluster_name
        self.routes: list[int] = []

    def start(self) -> None:
        routes = ",".join(f"nats://127.0.0.1:{port}" for port in self.routes)
        self._spawn(["nats-server", "-a", "127.0.0.1", "-p", str(self.port),
                     "-n", f"{self.cluster_name}-{self.name}", "-js",
                     "-sd", str(self.dir / "store"), "-m", str(self.http_port),
                     "--cluster", f"nats://127.0.0.1:{self.route_port}",
                     "--cluster_name", self.cluster_name, "--routes", routes])

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def monitor(self, path: str) -> Any:
        """GET the monitoring endpoint ``path`` (``connz?subs=1``); its JSON, None if down."""
        url = f"http://127.0.0.1:{self.http_port}/{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as exc:  # /healthz answers 503 with a JSON body
            with exc:
                return json.load(exc)
        except (OSError, ValueError):
            return None


class NatsCluster:
    """Three nats-server nodes with JetStream, routed to each other.

    Args:
        size: the number of nodes.
    """

    def __init__(self, size: int = 3) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="relaybus-natscl-"))
        self.name = f"relaybus-rel-{uuid.uuid4().hex[:6]}"
        self.nodes = [NatsNode(self.dir, i, self.name) for i in range(size)]
        for node in self.nodes:
            node.routes = [n.route_port for n in self.nodes if n is not node]
        try:
            for node in self.nodes:
                node.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def url(self, first: int = 0) -> str:
        """A ``nats://`` URL naming every node, starting with node ``first``."""
        order = self.nodes[first:] + self.nodes[:first]
        return "nats://" + ",".join(f"127.0.0.1:{n.port}" for n in order)

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def start(self, index: int) -> None:
        self.nodes[index].start()

    def _healthy(self) -> bool:
        size = len(self.nodes)
        for node in self.nodes:
            health = node.monitor("healthz")
            routes = node.monitor("routez")
            jsz = node.monitor("jsz")
            if not (health and health.get("status") == "ok" and routes
                    and routes.get("num_routes", 0) >= size - 1 and jsz
                    and (jsz.get("meta_cluster") or {}).get("leader")):
                return False
        return True

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Wait until every node is up, routed to the others and JetStream is current."""
        started = time.monotonic()
        _poll(f"NATS cluster {self.name}", self._healthy, timeout)
        return time.monotonic() - started

    def connections(self, name: str) -> list[tuple[int, dict[str, Any]]]:
        """(node index, /connz entry with subscriptions) of every connection called ``name``."""
        found = []
        for node in self.nodes:
            if node.alive:
                connz = node.monitor("connz?subs=1&limit=4096") or {}
                found += [(node.index, c) for c in connz.get("connections") or []
                          if c.get("name") == name]
        return found

    def nodes_of(self, names: list[str]) -> dict[str, int | None]:
        """The live node each named connection is attached to (None: none, or several)."""
        found: dict[str, list[int]] = {name: [] for name in names}
        for node in self.nodes:
            if node.alive:
                connz = node.monitor("connz?limit=4096") or {}
                for conn in connz.get("connections") or []:
                    if conn.get("name") in found:
                        found[conn["name"]].append(node.index)
        return {name: nodes[0] if len(nodes) == 1 else None for name, nodes in found.items()}

    def identities(self, name: str) -> set[tuple[Any, ...]]:
        """What tells the connections called ``name`` apart from any that replace them."""
        return {(node, c.get("cid"), c.get("start")) for node, c in self.connections(name)}

    def stop(self) -> None:
        try:
            for node in self.nodes:
                with contextlib.suppress(Exception):
                    node.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# -- RabbitMQ -----------------------------------------------------------------------------


def rabbitmqctl(node: str, *args: str, timeout: float = 60) -> str:
    """``rabbitmqctl -n node -q args``; its output (CalledProcessError if it fails)."""
    return subprocess.run(["rabbitmqctl", "-n", node, "-q", *args], check=True,
                          capture_output=True, text=True, timeout=timeout).stdout


def _chown_tree(path: Path) -> None:
    shutil.chown(path, "rabbitmq", "rabbitmq")
    for child in path.rglob("*"):
        shutil.chown(child, "rabbitmq", "rabbitmq")


class RabbitNode(RabbitInstance):
    """One RabbitMQ node of a cluster, keeping its data (and membership) across kills."""

    def __init__(self, base: Path, index: int) -> None:
        self.index = index
        self.port, self.dist_port = free_port(), free_port()
        self.dir = base / f"n{index}"
        self.dir.mkdir()
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n")
        (self.dir / "plugins").write_text("[].\n")
        _chown_tree(self.dir)
        self.node = f"relaybus-cl-{self.port}@localhost"

    def start(self) -> None:
        env = dict(os.environ, RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_PORT=str(self.port),
                   RABBITMQ_DIST_PORT=str(self.dist_port),
                   RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
                   RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
                   RABBITMQ_LOG_BASE=str(self.dir / "log"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "plugins"),
                   ERL_CRASH_DUMP=str(self.dir / "erl_crash.dump"))
        self._spawn(["rabbitmq-server"], env=env)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ctl(self, *args: str, timeout: float = 60) -> str:
        return rabbitmqctl(self.node, *args, timeout=timeout)

    def ctl_json(self, *args: str, timeout: float = 30) -> Any:
        return json.loads(self.ctl(*args, "--formatter", "json", timeout=timeout) or "null")


class RabbitCluster:
    """Three RabbitMQ nodes of their own, joined into one cluster with rabbitmqctl.

    Args:
        size: the number of nodes.
    """

    def __init__(self, size: int = 3) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="relaybus-rabbitcl-"))
        shutil.chown(self.dir, "rabbitmq", "rabbitmq")  # the nodes run as rabbitmq
        self.nodes = [RabbitNode(self.dir, i) for i in range(size)]
        try:
            for node in self.nodes:
                node.start()
            joining = self.nodes[1:]
            with ThreadPoolExecutor(len(joining)) as pool:  # rabbitmqctl takes ~1 s a call
                list(pool.map(lambda n: n.ctl("stop_app"), joining))
                for node in joining:  # one join at a time
                    node.ctl("join_cluster", self.nodes[0].node)
                list(pool.map(lambda n: n.ctl("start_app"), joining))
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def url(self, first: int = 0, query: str = "") -> str:
        """A ``rabbit://`` URL naming every node (failover order), starting with ``first``."""
        order = self.nodes[first:] + self.nodes[:first]
        return ("rabbit://" + ",".join(f"guest:guest@127.0.0.1:{n.port}" for n in order)
                + "/" + query)

    def live(self) -> RabbitNode:
        """A node that runs (for rabbitmqctl)."""
        return next(n for n in self.nodes if n.alive)

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def start(self, index: int) -> None:
        self.nodes[index].start()

    def _healthy(self) -> bool:
        try:
            if not all(node.alive for node in self.nodes):
                return False
            status = self.nodes[0].ctl_json("cluster_status", timeout=10)
            if len(status.get("running_nodes") or []) != len(self.nodes):
                return False
            # every quorum queue has all its members back
            for queue in self.queues():
                if queue.get("type") == "quorum" and \
                        len(queue.get("online") or []) != len(queue.get("members") or []):
                    return False
        except (subprocess.SubprocessError, ValueError, StopIteration):
            return False
        return True

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Wait until every node runs in the cluster and every quorum queue is whole."""
        started = time.monotonic()
        _poll("RabbitMQ cluster", self._healthy, timeout)
        return time.monotonic() - started

    def queues(self) -> list[dict[str, Any]]:
        """Every queue of the default vhost, as a live node sees it."""
        return self.live().ctl_json("list_queues", "name", "type", "consumers", "messages",
                                    "members", "online", "leader") or []

    def consumers(self) -> list[tuple[str, int]]:
        """(queue, node index of the consuming channel; -1: unknown) of every consumer.

        The registrations themselves (``list_consumers``): ``list_queues``' count for a
        quorum queue comes from its leader and reads 0 for a while after the leader moves,
        while deliveries go on.
        """
        by_name = {n.node: n.index for n in self.nodes}
        # the table shows a channel as <node.x.y.z>; the JSON formatter hides the node
        text = self.live().ctl("list_consumers", "--no-table-headers", "queue_name",
                               "channel_pid", timeout=10)
        found = []
        for line in text.splitlines():
            queue, _, pid = line.partition("\t")
            node = pid.strip().lstrip("<").rsplit(".", 3)[0]
            found.append((queue, by_name.get(node, -1)))
        return found

    def _connections(self) -> list[tuple[int, str | None, dict[str, Any]]]:
        """(node index, connection_name, row) of every client connection."""
        by_port = {n.port: n.index for n in self.nodes}
        rows = self.live().ctl_json("list_connections", "port", "peer_port", "connected_at",
                                    "client_properties", timeout=10) or []
        found = []
        for row in rows:
            props = row.get("client_properties")
            # rabbitmqctl's JSON shows the AMQP table as [key, type, value] triples
            pairs = {p[0]: p[-1] for p in props if isinstance(p, list) and p} \
                if isinstance(props, list) else dict(props or {})
            found.append((by_port.get(row.get("port"), -1), pairs.get("connection_name"), row))
        return found

    def connections(self, name: str) -> list[tuple[int, dict[str, Any]]]:
        """(node index, connection) of every connection whose connection_name is ``name``."""
        return [(node, row) for node, named, row in self._connections() if named == name]

    def nodes_of(self, names: list[str]) -> dict[str, int | None]:
        """The node each named connection is attached to (None: none, or several)."""
        found: dict[str, list[int]] = {name: [] for name in names}
        for node, named, _ in self._connections():
            if named in found:
                found[named].append(node)
        return {name: nodes[0] if len(nodes) == 1 else None for name, nodes in found.items()}

    def identities(self, name: str) -> set[tuple[Any, ...]]:
        """What tells the connections called ``name`` apart from any that replace them."""
        return {(node, c.get("peer_port"), c.get("connected_at"))
                for node, c in self.connections(name)}

    def stop(self) -> None:
        try:
            for node in self.nodes:
                with contextlib.suppress(Exception):
                    node.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
