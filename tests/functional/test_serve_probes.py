"""``relaybus serve --health-port``: what each probe says while the broker goes away and
comes back, and while the server drains.

The broker is a nats-server of the test's own (never the shared one): the test stops it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lossy_proxy import LossyProxy
from serve_support import (
    aprobe,
    file_appears,
    free_port,
    serve,
    stopped_at_end,
    until,
    wait_ready_line,
    write_service,
)
from test_nats_support import PrivateNatsServer, require_nats

import relaybus
from relaybus import Target
from relaybus.testing.behaviour import Compute
from relaybus.testing.brokers import require_broker

pytestmark = pytest.mark.broker

QUICK = "?reconnect_delay=0.05&reconnect_delay_max=0.3"
PROBES = ("/livez", "/readyz", "/startupz")


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[PrivateNatsServer]:
    require_nats()
    server = await PrivateNatsServer(tmp_path / "nats", jetstream=False).start()
    yield server
    await server.stop()


async def statuses(port: int) -> dict[str, tuple[int, str | None]]:
    answers = {path: await aprobe(port, path) for path in PROBES}
    return {path: (status, body.get("reason")) for path, (status, body) in answers.items()}


async def test_probes_through_a_broker_outage_and_a_drain(
        tmp_path: Path, nats_server: PrivateNatsServer) -> None:
    topic, port = f"probes_{free_port()}", free_port()
    url = nats_server.url + QUICK
    process = serve(tmp_path, topic, write_service(tmp_path), "--url", url, "--server", "s1",
                    "--health-port", str(port), "--drain-timeout", "20")
    with stopped_at_end(process):
        wait_ready_line(process)
        assert await statuses(port) == dict.fromkeys(PROBES, (200, None))
        status, body = await aprobe(port, "/metrics")
        assert status == 404 and "/readyz" in body["reason"]

        # the broker goes away: not ready, but alive (a restart would not bring it back)
        await nats_server.stop()

        async def not_ready() -> bool:
            return (await aprobe(port, "/readyz"))[0] == 503
        await until(not_ready, "readyz to fail without the broker")
        during = await statuses(port)
        assert during["/readyz"] == (503, "broker connection lost; reconnecting")
        assert during["/livez"] == (200, None) and during["/startupz"] == (200, None)

        # it comes back: ready again, and serving
        await nats_server.start()

        async def ready() -> bool:
            return (await aprobe(port, "/readyz"))[0] == 200
        await until(ready, "readyz to recover with the broker")
        async with await relaybus.connect(nats_server.url) as bus:
            client = bus.rpc_client(Target(topic=topic), timeout=10)
            assert (await client.call({}, "whoami"))["version"] == "v1"

            # SIGTERM with a call in progress: not ready while draining, still alive
            marker = tmp_path / "held"
            held = asyncio.create_task(client.call({}, "hold", marker=str(marker)))
            await file_appears(marker)
            process.send_signal(signal.SIGTERM)

            async def draining() -> str | None:
                status, body = await aprobe(port, "/readyz")
                return body.get("reason") if status == 503 else None
            assert (await until(draining, "readyz to fail while draining")).startswith(
                "draining")
            assert await aprobe(port, "/livez") == (200, {"status": "ok"})
            assert process.poll() is None
            (tmp_path / "held.go").touch()
            assert await held == "released"
        assert await asyncio.to_thread(process.wait, 20) == 0


async def test_the_rabbit_transport_says_when_its_connection_is_away() -> None:
    # what /readyz reads, on RabbitMQ: the shared broker is reached through a proxy of the
    # test's own, which cuts the connection and refuses new ones for a while
    require_broker("RabbitMQ", "127.0.0.1", 5672)
    proxy = await LossyProxy(5672).start()
    url = f"rabbit://guest:guest@127.0.0.1:{proxy.port}/{QUICK}"
    topic = f"probes_rabbit_{free_port()}"
    try:
        async with await relaybus.connect(url) as bus:
            async with bus.rpc_server(Target(topic=topic, server="s1"), [Compute("s1")]):
                assert bus.connection_problem() is None
                proxy.refusing = True
                proxy.cut()

                async def lost() -> str | None:
                    return bus.connection_problem()
                assert await until(lost, "the lost connection to show") == \
                    "broker connection lost; reconnecting"
                proxy.refusing = False

                async def back() -> bool:
                    return bus.connection_problem() is None
                await until(back, "the connection to come back")
                client = bus.rpc_client(Target(topic=topic), timeout=10)
                assert await client.call({}, "whoami") == "s1"
            assert bus.connection_problem() is None
        assert bus.connection_problem() == "the bus is closed"
    finally:
        await proxy.close()
