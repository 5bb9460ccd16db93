"""Connecting to NATS: several hosts, unreachable servers, credentials and TLS.

Tests that need a server configured their own way (credentials, TLS) start a private
nats-server on a free port (see test_nats_support.PrivateNatsServer).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_nats_support import HOST, URL, WAIT, PrivateNatsServer, free_port, require_nats

import relaybus
from relaybus import Target
from relaybus.testing.behaviour import Compute
from relaybus.testing.brokers import brokers_required

pytestmark = pytest.mark.broker


async def round_trip(url: str, **options: object) -> str:
    """Connect, serve and call once on ``url``; return the answer."""
    async with await relaybus.connect(url, **options) as bus, \
            bus.rpc_server(Target(topic="probe", server="s1"), [Compute("s1")]):
        client = bus.rpc_client(Target(topic="probe"), timeout=WAIT)
        return str(await client.call({}, "whoami"))


async def test_the_next_host_is_used_when_the_first_is_down() -> None:
    require_nats()
    dead = free_port()
    assert await round_trip(f"nats://{HOST}:{dead},{HOST}:4222/") == "s1"


async def test_no_server_at_the_url_fails_fast_with_connection_failure() -> None:
    started = time.monotonic()
    with pytest.raises(relaybus.ConnectionFailure) as info:
        await relaybus.connect(f"nats://{HOST}:{free_port()}/", reconnect_delay=0.05)
    assert isinstance(info.value, ConnectionError)
    assert not isinstance(info.value, relaybus.AuthenticationFailure)
    assert time.monotonic() - started < 5


@pytest.fixture
async def password_server(tmp_path: Path) -> AsyncIterator[PrivateNatsServer]:
    require_nats()
    server = await PrivateNatsServer(tmp_path, "--user", "svc", "--pass", "p@ss w:rd",
                                     jetstream=False).start()
    yield server
    await server.stop()


async def test_percent_encoded_credentials_log_in(password_server: PrivateNatsServer) -> None:
    url = f"nats://svc:p%40ss%20w%3Ard@{HOST}:{password_server.port}/"
    assert await round_trip(url) == "s1"


async def test_bad_credentials_end_with_authentication_failure(
        password_server: PrivateNatsServer) -> None:
    started = time.monotonic()
    with pytest.raises(relaybus.AuthenticationFailure) as info:
        await relaybus.connect(f"nats://svc:wrong@{HOST}:{password_server.port}/",
                               reconnect_delay=0.05)
    assert "wrong" not in str(info.value)
    assert time.monotonic() - started < 5  # no retry loop


async def test_a_token_in_the_url(tmp_path: Path) -> None:
    require_nats()
    server = await PrivateNatsServer(tmp_path, "--auth", "t0ken", jetstream=False).start()
    try:
        assert await round_trip(f"nats://t0ken@{HOST}:{server.port}/") == "s1"
        with pytest.raises(relaybus.AuthenticationFailure):
            await relaybus.connect(f"nats://other@{HOST}:{server.port}/",
                                   reconnect_delay=0.05)
    finally:
        await server.stop()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost."""
    if shutil.which("openssl") is None:
        if brokers_required():
            pytest.fail("the openssl command is needed to make test certificates",
                        pytrace=False)
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("nats-tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=relaybus-nats-test-ca", "-keyout", "ca.key", "-out", "ca.pem")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=server",
            "-keyout", "server.key", "-out", "server.csr")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem")
    return {"ca": folder / "ca.pem", "cert": folder / "server.pem",
            "key": folder / "server.key"}


async def test_tls(tmp_path: Path, tls_files: dict[str, Path]) -> None:
    require_nats()
    server = await PrivateNatsServer(tmp_path, "--tls", "--tlscert", str(tls_files["cert"]),
                                     "--tlskey", str(tls_files["key"]),
                                     jetstream=False).start()
    url = f"nats://{HOST}:{server.port}/"
    try:
        assert await round_trip(f"{url}?tls_ca_file={tls_files['ca']}") == "s1"
        assert await round_trip(url, tls=True, tls_verify=False) == "s1"
        with pytest.raises(relaybus.ConnectionFailure):  # not signed by a CA we trust
            await relaybus.connect(url, tls=True, reconnect_delay=0.05)
    finally:
        await server.stop()


async def test_the_shared_url_still_works_after_all_that() -> None:
    require_nats()
    assert await round_trip(URL) == "s1"


async def test_a_server_without_jetstream(tmp_path: Path) -> None:
    require_nats()
    server = await PrivateNatsServer(tmp_path, jetstream=False).start()
    try:
        async with await relaybus.connect(server.url) as bus:
            with pytest.raises(relaybus.ConnectionFailure, match="notifications=core"):
                await bus.notifier("p", topics=["plain"]).info({}, "e", {})
        async with await relaybus.connect(server.url, notifications="core") as bus:
            got = asyncio.Event()

            class Meter:
                async def info(self, *args: object) -> None:
                    got.set()

            async with bus.notification_listener([Target(topic="plain")], [Meter()]):
                await bus.notifier("p", topics=["plain"]).info({}, "e", {})
                await asyncio.wait_for(got.wait(), WAIT)
    finally:
        await server.stop()
