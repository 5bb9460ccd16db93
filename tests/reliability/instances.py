"""Broker instances of a scenario's own, on free loopback ports, that it may kill.

The shared brokers stay untouched: a scenario that kills a broker kills its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 60.0, up: bool = True) -> float:
    """Wait until the port accepts (or refuses) connections; returns the time taken."""
    started = time.monotonic()
    while port_open(port) != up:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"port {port} still {'closed' if up else 'open'} "
                               f"after {timeout} s")
        time.sleep(0.1)  # polling a port: the broker sends no event
    return time.monotonic() - started


class _Instance:
    port: int
    process: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log = open(self.dir / "broker.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(args, env=env, stdout=self.log, stderr=self.log,
                                        start_new_session=True)
        wait_port(self.port)

    def _stragglers(self) -> list[int]:
        """Processes of this instance outside its process group (a user switch escapes it)."""
        return []

    def kill(self) -> None:
        """Kill the broker hard: SIGKILL to its process group and any straggler."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        for pid in self._stragglers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.log.close()
        self.process = None
        wait_port(self.port, up=False, timeout=30)

    def stop(self) -> None:
        try:
            self.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class NatsInstance(_Instance):
    """nats-server with JetStream, storing in a directory of its own."""

    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.extra = list(extra)
        self.dir = Path(tempfile.mkdtemp(prefix="relaybus-nats-"))
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._spawn(["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd",
                     str(self.dir / "store"), *self.extra])


class RabbitInstance(_Instance):
    """A RabbitMQ node of its own (its own name, ports, data), keeping data across kills."""

    def __init__(self, extra_conf: str = "") -> None:
        self.port = free_port()
        self.tls_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="relaybus-rabbit-"))
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n"
            + extra_conf.replace("{tls_port}", str(self.tls_port)))
        (self.dir / "plugins").write_text("[].\n")
        shutil.chown(self.dir, "rabbitmq", "rabbitmq")
        for path in self.dir.iterdir():
            shutil.chown(path, "rabbitmq", "rabbitmq")
        self.node = f"relaybus-rel-{self.port}@localhost"
        self.start()

    @property
    def url(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.port}/"

    def _stragglers(self) -> list[int]:
        # rabbitmq-server switches to the rabbitmq user in a session of its own, so the
        # node is found by the name in its environment, not by process group.
        marker = f"RABBITMQ_NODENAME={self.node}".encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    if marker in (proc / "environ").read_bytes().split(b"\0"):
                        pids.append(int(proc.name))
        return pids

    def start(self) -> None:
        env = dict(os.environ, RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_PORT=str(self.port),
                   RABBITMQ_DIST_PORT=str(free_port()),
                   RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
                   RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
                   RABBITMQ_LOG_BASE=str(self.dir / "log"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "plugins"))
        self._spawn(["rabbitmq-server"], env=env)

    def shutdown(self) -> None:
        """Stop the node cleanly (``rabbitmqctl shutdown``), keeping its data; ``start()``
        brings it back. (A node killed with SIGKILL does not bring a stream queue back on
        RabbitMQ 3.10; a clean shutdown does.)"""
        subprocess.run(["rabbitmqctl", "-n", self.node, "-q", "shutdown"], check=True,
                       capture_output=True, timeout=120)
        wait_port(self.port, up=False, timeout=60)
        if self.process is not None:  # the launcher ends with the node
            self.process.wait(timeout=60)
            self.log.close()
        self.process = None


def available(kind: str) -> bool:
    return shutil.which("rabbitmq-server" if kind == "rabbit" else "nats-server") is not None
