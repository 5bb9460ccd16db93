"""A broker that closes the connection right after its CONNACK (as one going down while the
gateway connects does) must not leave the bridge believing it is connected: aiomqtt loses
that disconnection, and the bridge then published nothing, for ever, while /readyz said
ready (seen as a flaky broker-restart test)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from firehose_support import WAIT

from relaybus.gateway.mqtt import MqttBridge, MqttURL

CONNACK_V5 = b"\x20\x03\x00\x00\x00"  # session not present, success, no properties


@contextlib.asynccontextmanager
async def closing_broker() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP server answering each CONNECT with a CONNACK, then closing; its port, and the
    connections it took (one entry each)."""
    taken: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        taken.append(1)
        await reader.read(1024)  # the CONNECT
        writer.write(CONNACK_V5)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], taken


async def test_a_connection_closed_right_after_its_connack_is_retried() -> None:
    async with closing_broker() as (port, taken):
        bridge = MqttBridge(MqttURL.parse(f"mqtt://127.0.0.1:{port}"), identifier="race")
        runner = asyncio.create_task(bridge.run(), name="test.mqtt-bridge")
        try:
            async with asyncio.timeout(WAIT):
                while bridge.reconnects < 3:  # noqa: ASYNC110 - the bridge has no event for it
                    await asyncio.sleep(0.02)
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
    assert len(taken) >= 3
    assert bridge.connected is False
    assert "closed the connection as soon as it was made" in str(bridge.last_error)
