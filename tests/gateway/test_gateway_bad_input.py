"""Bad input gets a clear error and a closed connection; the gateway keeps serving."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from firehose_support import (
    PUBLISH_TOKEN,
    WAIT,
    GatewayProcess,
    SSEClient,
    event,
    ws_client,
    ws_events,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

BAD_FILTERS = ["nova/#/x", "nova/x#", "nova/+x/y", "", "a" * 2000]


async def _refused(url: str, **options: object) -> tuple[dict[str, str], int, str]:
    """Connect, expect an error frame and a close; return (frame, close code, reason)."""
    async with connect(url, **options) as websocket:
        frame = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(websocket.recv(), WAIT)
    assert closed.value.rcvd is not None
    return frame, closed.value.rcvd.code, closed.value.rcvd.reason


async def _still_serving(gateway: GatewayProcess, name: str) -> None:
    async with ws_client(gateway.ws_url([f"nova/{name}/#"])) as websocket:
        await gateway.publish(event(name, f"{name}.still.serving"))
        (got,) = await ws_events(websocket, 1)
    assert got["type"] == f"{name}.still.serving"


async def test_malformed_filters_are_refused(start_gateway: Callable[..., GatewayProcess],
                                             name: str) -> None:
    gateway = start_gateway()
    for bad in BAD_FILTERS:
        frame, code, reason = await _refused(gateway.ws_url([bad]))
        assert frame["kind"] == "error" and frame["error"] == "bad-filter", bad
        assert code == 4400 and "filter" in reason
        sse = await SSEClient.open(gateway.port, f"/events?topic={bad}")
        assert sse.status == 400
        assert (await sse.body())["error"] == "bad-filter"
        await sse.close()
    frame, code, _ = await _refused(gateway.ws_url(["x"] * 33))
    assert code == 4400 and "at most 32" in frame["message"]
    await _still_serving(gateway, name)


async def test_oversized_frames_and_bodies_are_refused(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway("--max-frame", "4096")
    async with ws_client(gateway.ws_url(token=PUBLISH_TOKEN), max_size=None) as websocket:
        await websocket.send(json.dumps({"action": "publish",
                                         "event": event(name, "big", "x" * 10_000)}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(websocket.recv(), WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    status, body = await asyncio.to_thread(
        gateway.request, "POST", "/publish", event(name, "big", "x" * 10_000),
        {"Authorization": f"Bearer {PUBLISH_TOKEN}"})
    assert status == 413 and body["error"] == "too-large"
    await _still_serving(gateway, name)


async def test_bad_tokens_are_refused(start_gateway: Callable[..., GatewayProcess],
                                      name: str) -> None:
    gateway = start_gateway("--token", "sub-secret")
    for url in (gateway.ws_url(), gateway.ws_url(token="wrong")):
        frame, code, _ = await _refused(url)
        assert frame["error"] == "bad-token" and code == 4401
    frame, code, _ = await _refused(gateway.ws_url(),
                                    additional_headers={"Authorization": "Basic abc"})
    assert code == 4401 and "Bearer" in frame["message"]
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        sse = await SSEClient.open(gateway.port, "/events", headers)
        assert sse.status == 401 and (await sse.body())["error"] == "bad-token"
        await sse.close()
    status, _ = await asyncio.to_thread(gateway.request, "GET", "/stats")
    assert status == 401
    # The subscribe token subscribes, but cannot publish.
    async with ws_client(gateway.ws_url(token="sub-secret")) as websocket:
        await websocket.send(json.dumps({"action": "publish", "event": event(name, "x")}))
        frame = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(websocket.recv(), WAIT)
    assert frame["error"] == "forbidden" and closed.value.rcvd.code == 4403  # type: ignore[union-attr]
    status, body = await asyncio.to_thread(gateway.request, "POST", "/publish",
                                           event(name, "x"),
                                           {"Authorization": "Bearer sub-secret"})
    assert status == 403 and body["error"] == "forbidden"
    sse = await SSEClient.open(gateway.port, "/events?token=sub-secret")
    assert sse.status == 200
    await sse.close()


async def test_nobody_publishes_without_a_publish_token(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway(publish_token=None)
    status, body = await asyncio.to_thread(gateway.request, "POST", "/publish", event(name, "x"))
    assert status == 403 and body["error"] == "forbidden"
    async with ws_client(gateway.ws_url()) as websocket:
        await websocket.send(json.dumps({"action": "publish", "event": event(name, "x")}))
        frame = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
    assert frame["error"] == "forbidden"
    stats = await gateway.stats()
    assert stats["events_in"] == 0


async def test_publishing_with_the_token_works_and_bad_events_are_refused(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway()
    async with ws_client(gateway.ws_url([f"nova/{name}/#"], token=PUBLISH_TOKEN)) as websocket:
        await websocket.send(json.dumps({"action": "publish", "ref": 7,
                                         "event": event(name, f"{name}.via.ws", {"a": 1})}))
        ack = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
        (got,) = await ws_events(websocket, 1)
        assert ack == {"kind": "published", "count": 1, "ref": 7}
        assert got["type"] == f"{name}.via.ws" and got["data"] == {"a": 1}
        await websocket.send(json.dumps({"action": "publish",
                                         "event": {"type": name, "priority": "loud"}}))
        frame = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
    assert frame["error"] == "bad-event" and "priority" in frame["message"]
    headers = {"Authorization": f"Bearer {PUBLISH_TOKEN}"}
    for body, message in [({"source": name}, "'type'"), ([], "1 to 1000"),
                          ([event(name, "ok"), {"type": 5}], "event 1"),
                          ({"type": "x", "specversion": "0.3"}, "specversion")]:
        status, answer = await asyncio.to_thread(gateway.request, "POST", "/publish", body,
                                                 headers)
        assert status == 400 and answer["error"] == "bad-event" and message in answer["message"]
    status, answer = await asyncio.to_thread(gateway.request, "POST", "/publish", b"{nope",
                                             headers)
    assert status == 400 and answer["error"] == "bad-json"


async def test_garbage_on_the_socket(start_gateway: Callable[..., GatewayProcess],
                                     name: str) -> None:
    gateway = start_gateway()
    # Not HTTP at all: a 400 answer, and the connection is closed.
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(WAIT):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400")
    # Garbage frames on a WebSocket: an error frame, then a close.
    for frame_data, error in [("not json", "bad-json"), (b"\x00\x01binary", "bad-frame"),
                              ('{"action": "shout"}', "bad-request"), ("[1, 2]", "bad-request")]:
        async with connect(gateway.ws_url()) as websocket:
            await websocket.recv()  # hello
            await websocket.send(frame_data)
            frame = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(websocket.recv(), WAIT)
        assert frame["error"] == error and closed.value.rcvd.code == 4400  # type: ignore[union-attr]
    # A wrong method or path: plain HTTP errors.
    status, _ = await asyncio.to_thread(gateway.request, "DELETE", "/events")
    assert status == 405
    status, _ = await asyncio.to_thread(gateway.request, "GET", "/nowhere")
    assert status == 404
    await _still_serving(gateway, name)
    status, health = await asyncio.to_thread(gateway.request, "GET", "/healthz")
    assert status == 200 and health["status"] == "ok"
