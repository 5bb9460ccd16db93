"""Helpers for the nats driver's tests (no tests here): unique names, a raw NATS peer, and
a private nats-server for tests that need their own configuration or a restart.

The raw peer is nats-py used directly, not through relaybus, so what it reports about
subjects, headers and streams is a second opinion on the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client

from relaybus import Target
from relaybus.drivers.nats.naming import Naming
from relaybus.testing.brokers import brokers_required, reachable, require_broker

HOST, PORT = "127.0.0.1", 4222
URL = f"nats://{HOST}:{PORT}"
BROKER = ("NATS", HOST, PORT)
NATS_SERVER = "/usr/sbin/nats-server"
WAIT = 10.0
NAMING = Naming("relaybus", "openstack")


def unique_topic(request: pytest.FixtureRequest, prefix: str = "nt") -> str:
    """A topic no other test uses, derived from the test's name."""
    name = re.sub(r"\W+", "_", request.node.name)[-40:]
    return f"{prefix}_{name}_{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def raw_client(url: str = URL, **options: object) -> AsyncIterator[Client]:
    """A plain nats-py client, closed on exit."""
    client = await nats.connect(url, allow_reconnect=False, **options)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        await client.close()


async def delete_streams(topics: Sequence[str], *, exchange: str = "openstack",
                         url: str = URL) -> None:
    """Delete the notification streams of ``topics`` (those that exist)."""
    if not reachable(HOST, PORT) and url == URL:
        return
    async with raw_client(url) as client:
        jsm = client.jsm()
        for topic in topics:
            name, _ = NAMING.stream(Target(exchange=exchange, topic=topic))
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await jsm.delete_stream(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class _PortTaken(Exception):
    pass


class PrivateNatsServer:
    """A nats-server of the test's own, on a free port, with JetStream in ``store``.

    ``start()`` returns once the server accepts connections (and JetStream answers);
    ``stop()`` ends it; ``start()`` again restarts it on the same port and store.
    """

    def __init__(self, store: Path, *args: str, jetstream: bool = True) -> None:
        if not Path(NATS_SERVER).exists():
            reason = f"{NATS_SERVER} is not installed"
            if brokers_required():
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        self.port = free_port()
        self.store = store
        store.mkdir(parents=True, exist_ok=True)
        self.args = list(args)
        self.jetstream = jetstream
        self.process: asyncio.subprocess.Process | None = None
        self.started_once = False
        self.log = store / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    async def start(self) -> PrivateNatsServer:
        """Start (or restart) the server; a fresh port is tried if this one got taken."""
        for attempt in range(3):
            try:
                return await self._start()
            except _PortTaken:
                if self.started_once or attempt == 2:  # a restart keeps its port
                    raise RuntimeError(f"port {self.port} is taken") from None
                self.port = free_port()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _start(self) -> PrivateNatsServer:
        command = [NATS_SERVER, "-a", HOST, "-p", str(self.port), "-l", str(self.log),
                   *self.args]
        if self.jetstream:
            command += ["-js", "-sd", str(self.store)]
        seen = self.log.stat().st_size if self.log.exists() else 0
        process = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT
        # readiness probe: *this* process says it is ready (not whatever took the port)
        while True:
            log = self.log.read_text()[seen:] if self.log.exists() else ""
            if f"[{process.pid}]" in log and "Server is ready" in log:
                break
            if process.returncode is not None:
                if "address already in use" in log:
                    raise _PortTaken
                raise RuntimeError(f"nats-server exited: {log[-2000:]}")
            if time.monotonic() > deadline:
                process.kill()
                await process.wait()
                raise RuntimeError("nats-server did not start in time")
            await asyncio.sleep(0.02)
        self.process = process
        self.started_once = True
        return self

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.terminate()
            async with asyncio.timeout(WAIT):
                await process.wait()


async def wait_for_jetstream(url: str, domain: str | None = None) -> None:
    """Return once JetStream API requests sent through the server at ``url`` (to
    ``domain``, if given) are answered."""
    prefix = "$JS.API" if domain is None else f"$JS.{domain}.API"
    async with raw_client(url) as client:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                await client.jsm(prefix=prefix, timeout=1).account_info()
                return
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError,
                    nats.js.errors.ServiceUnavailableError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


def require_nats() -> None:
    require_broker(*BROKER)
