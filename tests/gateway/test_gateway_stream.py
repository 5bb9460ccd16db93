"""WebSocket and SSE delivery from a real gateway process: filters, resume, gaps, slow clients."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import Callable
from typing import Any

from firehose_support import (
    WAIT,
    GatewayProcess,
    SSEClient,
    event,
    types_of,
    ws_client,
    ws_events,
)


def _stream(name: str, count: int, source: str = "compute.host1") -> list[dict[str, Any]]:
    return [event(source, f"{name}.step{i}", {"n": i}) for i in range(count)]


async def test_websocket_clients_get_what_their_filters_match(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway()
    mixed = [event("compute.host1", "compute.instance.create.end", {"k": name, "i": 0}),
             event("compute.host2", "compute.instance.delete.end", {"k": name, "i": 1}),
             event("scheduler.host1", "scheduler.select_destinations.end", {"k": name, "i": 2}),
             event("compute.host1", "compute.instance.create.start", {"k": name, "i": 3}),
             event("compute.host2", "compute.instance.create.end", {"k": name, "i": 4})]
    async with ws_client(gateway.ws_url(["nova/#"])) as everything, \
            ws_client(gateway.ws_url(["nova/+/compute/instance/create/#"])) as creates, \
            ws_client(gateway.ws_url(["nova/compute.host2/#",
                                      "nova/scheduler.host1/#"])) as two:
        await gateway.publish(mixed)
        seen_all = await ws_events(everything, 5)
        seen_creates = await ws_events(creates, 3)
        seen_two = await ws_events(two, 3)
    assert [e["data"]["i"] for e in seen_all] == [0, 1, 2, 3, 4]
    assert [e["data"]["i"] for e in seen_creates] == [0, 3, 4]
    assert [e["data"]["i"] for e in seen_two] == [1, 2, 4]
    first = seen_all[0]
    assert first["specversion"] == "1.0" and first["source"] == "compute.host1"
    assert first["type"] == "compute.instance.create.end"
    assert first["firehosetopic"] == "nova/compute.host1/compute/instance/create/end"
    assert first["busexchange"] == "nova" and first["bustopic"] == "notifications"
    assert first["priority"] == "info" and first["datacontenttype"] == "application/json"
    assert first["time"].endswith("Z") and first["id"]


async def test_sse_clients_get_what_their_filters_match(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway()
    sse = await SSEClient.open(gateway.port,
                               "/events?topic=nova/%2B/compute/%23&topic=nova/api/%23")
    assert sse.status == 200 and sse.headers["content-type"].startswith("text/event-stream")
    hello = await sse.message()
    assert hello["event"] == "hello"
    assert json.loads(hello["data"])["filters"] == ["nova/+/compute/#", "nova/api/#"]
    await gateway.publish([event("compute.host1", f"compute.{name}.a"),
                           event("network.host1", f"network.{name}.b"),
                           event("api", f"{name}.c", priority="warn"),
                           event("compute.host3", f"compute.{name}.d", priority="error")])
    got = await sse.events(3)
    await sse.close()
    assert types_of(got) == [f"compute.{name}.a", f"{name}.c", f"compute.{name}.d"]
    assert [e["priority"] for e in got] == ["info", "warn", "error"]


async def test_websocket_resumes_after_a_dropped_connection_without_loss(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway()
    async with ws_client(gateway.ws_url(["nova/#"])) as websocket:
        await gateway.publish(_stream(name, 3))
        before = await ws_events(websocket, 3)
        websocket.transport.abort()  # the connection drops, no close handshake
    await gateway.publish(_stream(name + "_missed", 5))
    async with ws_client(gateway.ws_url(["nova/#"], since=before[-1]["id"])) as websocket:
        await gateway.publish(_stream(name + "_after", 2))
        after = await ws_events(websocket, 7)
    assert types_of(after) == ([f"{name}_missed.step{i}" for i in range(5)]
                               + [f"{name}_after.step{i}" for i in range(2)])
    assert len({e["id"] for e in before + after}) == 10


async def test_sse_resumes_with_last_event_id_without_loss(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway()
    sse = await SSEClient.open(gateway.port, "/events?topic=nova/%23")
    await sse.message()
    await gateway.publish(_stream(name, 4))
    before = await sse.events(4)
    await sse.close()
    await gateway.publish(_stream(name + "_missed", 6))
    sse = await SSEClient.open(gateway.port, "/events?topic=nova/%23",
                               {"Last-Event-ID": before[1]["id"]})
    controls: list[dict[str, Any]] = []
    after = await sse.events(8, controls)
    await sse.close()
    assert controls == []
    assert types_of(after) == ([f"{name}.step{i}" for i in (2, 3)]
                               + [f"{name}_missed.step{i}" for i in range(6)])


async def test_a_gap_marker_when_the_buffer_no_longer_reaches_back(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway("--replay-events", "5")
    async with ws_client(gateway.ws_url(["nova/#"])) as witness:
        async with ws_client(gateway.ws_url(["nova/#"])) as websocket:
            await gateway.publish(_stream(name, 1))
            (seen,) = await ws_events(websocket, 1)
        await gateway.publish(_stream(name + "_missed", 12))
        await ws_events(witness, 13)  # the gateway has them all: 7 are evicted by now
    controls: list[dict[str, Any]] = []
    async with ws_client(gateway.ws_url(["nova/#"], since=seen["id"])) as websocket:
        after = await ws_events(websocket, 5, controls)
    assert [c["kind"] for c in controls] == ["gap"]
    assert controls[0]["since"] == seen["id"] and controls[0]["replayed"] == 5
    assert types_of(after) == [f"{name}_missed.step{i}" for i in range(7, 12)]
    # SSE says the same, as an 'event: gap' message before the replay.
    sse = await SSEClient.open(gateway.port, f"/events?since={seen['id']}")
    messages = [await sse.message() for _ in range(3)]
    await sse.close()
    assert [m["event"] for m in messages] == ["hello", "gap", "message"]
    assert json.loads(messages[1]["data"])["oldest"] == after[0]["id"]


def _stalled_websocket(port: int, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)  # byte by byte: leave every frame after it unread
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def _frames(sock: socket.socket) -> list[dict[str, Any]]:
    """Read the stalled client's text frames until one says how many were dropped."""
    sock.settimeout(WAIT)
    buffer, start, frames = bytearray(), 0, []
    while not any(f.get("kind") == "dropped" for f in frames):
        buffer += sock.recv(1 << 20)
        while len(buffer) - start >= 2:
            opcode, length, offset = buffer[start] & 0x0F, buffer[start + 1] & 0x7F, 2
            if length == 126:
                length, offset = int.from_bytes(buffer[start + 2:start + 4], "big"), 4
            elif length == 127:
                length, offset = int.from_bytes(buffer[start + 2:start + 10], "big"), 10
            if len(buffer) - start < offset + length:
                break
            if opcode == 1:  # text; pings and the like are not ours
                frames.append(json.loads(buffer[start + offset:start + offset + length]))
            start += offset + length
    return frames


async def test_a_stalled_client_does_not_delay_another(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway("--client-queue", "50")
    stalled = await asyncio.to_thread(_stalled_websocket, gateway.port, "/ws?topic=nova/%23")
    total, batch, padding = 3000, 200, "x" * 4000  # ~12 MB: far past any socket buffer
    try:
        async with ws_client(gateway.ws_url(["nova/#"]), max_queue=None) as healthy:
            for start in range(0, total, batch):
                await gateway.publish([event("compute.host1", f"{name}.e{i}", {"pad": padding})
                                       for i in range(start, start + batch)])
            # Every event reaches the healthy client while the stalled one has read nothing.
            got = await ws_events(healthy, total)
            assert types_of(got) == [f"{name}.e{i}" for i in range(total)]
            stats = await gateway.stats()
            assert stats["dropped"] > 0 and stats["clients"] == 2
        # When the stalled client reads again, it is told how many it lost.
        frames = await asyncio.to_thread(_frames, stalled)
    finally:
        stalled.close()
    assert frames[0]["kind"] == "hello"
    dropped = next(f for f in frames if f["kind"] == "dropped")
    assert dropped["count"] > 0 and dropped["total"] >= dropped["count"]


async def test_healthz_and_stats(start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway()
    status, health = await asyncio.to_thread(gateway.request, "GET", "/healthz")
    assert status == 200 and health["status"] == "ok" and health["listening"] is True
    assert health["mqtt"] is None
    async with ws_client(gateway.ws_url()) as websocket:
        await gateway.publish(_stream(name, 3))
        await ws_events(websocket, 3)
        stats = await gateway.stats()
    assert stats["events_in"] == 3 and stats["events_out"] == 3
    assert stats["clients"] == 1 and stats["dropped"] == 0
    assert stats["replay"]["events"] == 3 and stats["published_via_gateway"] == 3


async def test_the_gateway_stops_cleanly_and_closes_its_clients(
        start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = start_gateway()
    async with ws_client(gateway.ws_url()) as websocket:
        code = await asyncio.to_thread(gateway.stop)
        async with asyncio.timeout(WAIT):
            await websocket.wait_closed()
    assert code == 0, gateway.output()
    assert websocket.close_code == 1001
