"""Fixtures of the rabbit driver's own tests: a broker check, unique names, buses, a tap, and
a RabbitMQ node of a module's own for the tests that stop or reconfigure a broker."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from rabbit_support import BROKER, URL, Tap

import relaybus
from relaybus.testing.brokers import require_broker, require_program
from relaybus.testing.buses import bus_factory

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reliability"))
from instances import RabbitInstance


@pytest.fixture
def rabbit_url() -> str:
    require_broker(*BROKER)
    return URL


@pytest.fixture(scope="module")
def own_rabbit() -> Iterator[RabbitInstance]:
    """A RabbitMQ node of this module's own (tests/reliability/instances.py), which its tests
    may stop, restart or put under an alarm: the shared broker is never touched, since other
    runs on this machine use it at the same time."""
    require_program("rabbitmq-server", "for a node of the module's own")
    broker = RabbitInstance()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic no other test uses, derived from this test's name."""
    name = re.sub(r"\W+", "_", request.node.name)[-40:]
    return f"rbr_{name}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def make_bus(rabbit_url: str) -> AsyncIterator[Callable[..., Awaitable[relaybus.Bus]]]:
    async with bus_factory(rabbit_url) as make:
        yield make


@pytest.fixture
async def bus(make_bus: Callable[..., Awaitable[relaybus.Bus]]) -> relaybus.Bus:
    return await make_bus()


@pytest.fixture
async def tap(rabbit_url: str) -> AsyncIterator[Tap]:
    peer = await Tap().open()
    yield peer
    await peer.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client one."""
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=relaybus-test-ca", "-keyout", "ca.key", "-out", "ca.pem")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", f"{name}.pem")
    return {name: folder / file for name, file in [
        ("ca", "ca.pem"), ("server_cert", "server.pem"), ("server_key", "server.key"),
        ("client_cert", "client.pem"), ("client_key", "client.key")]}
