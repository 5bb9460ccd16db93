"""Open doors, closed politely: slowloris connections are closed after --header-timeout, and
beyond --max-connections a new connection gets HTTP 503 at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable

from firehose_support import WAIT, GatewayProcess, event, ws_client, ws_events


def _slowloris(port: int) -> bytes:
    """Start a request, never finish its headers; return what the gateway sent before closing."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(WAIT)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        return answer


async def test_a_slowloris_connection_is_closed_and_upgraded_ones_are_not(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway("--header-timeout", "0.5")
    async with ws_client(gateway.ws_url()) as websocket:
        answer = await asyncio.to_thread(_slowloris, gateway.port)
        assert answer == b""  # closed without an answer: it never sent a request
        # The WebSocket, open longer than the header timeout, is still served.
        await gateway.publish(event(name, "still.served"))
        (got,) = await ws_events(websocket, 1)
    assert got["type"] == "still.served"
    stats = await gateway.stats()
    assert stats["connections"]["closed_slow_headers"] == 1


def _get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        sock.settimeout(WAIT)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        return answer


async def test_beyond_the_connection_limit_the_answer_is_503(
        start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = start_gateway("--max-connections", "3")
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(ws_client(gateway.ws_url()))
        answer = await asyncio.to_thread(_get, gateway.port, "/healthz")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 5" in head
        assert json.loads(body)["error"] == "busy"
    # The clients gone, the gateway answers again (the closes are seen asynchronously).
    async with asyncio.timeout(WAIT):
        while True:  # polling: a closed connection leaves the server's set a moment later
            if (await asyncio.to_thread(_get, gateway.port, "/healthz")).startswith(
                    b"HTTP/1.1 200"):
                break
            await asyncio.sleep(0.05)
    assert (await gateway.stats())["connections"]["refused_busy"] >= 1


async def test_max_connections_beyond_the_hard_open_files_limit_fails_clearly(
        start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = GatewayProcess(["--bus", "memory://", "--max-connections", "100000000"])
    try:
        gateway.start()
    except AssertionError as exc:
        assert "open files" in str(exc) and "Traceback" not in str(exc), str(exc)
        assert gateway.process is not None and gateway.process.returncode == 2
    else:
        raise AssertionError("the gateway started with 100,000,000 allowed connections")
