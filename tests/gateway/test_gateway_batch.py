"""Batched WebSocket frames (``batch=1``): several events per frame for a client that lags."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from firehose_support import WAIT, GatewayProcess, event, ws_client, ws_events

from relaybus.gateway.events import Event
from relaybus.gateway.hub import Dropped, Gap
from relaybus.gateway.web import _FrameCache, text_frame, ws_batched


def _event(n: int) -> Event:
    return Event(n, f"id{n}", "nova/x", "t", json.dumps({"id": f"id{n}", "n": n}).encode())


def test_runs_of_events_share_a_frame_and_control_frames_keep_their_place() -> None:
    frames = [json.loads(f) for f in ws_batched([
        Gap("id0", 3, "id1"), _event(1), _event(2), _event(3), Dropped(2, 2), _event(6)])]
    assert [f["kind"] for f in frames] == ["gap", "events", "dropped", "event"]
    assert frames[1]["count"] == 3 and [e["n"] for e in frames[1]["events"]] == [1, 2, 3]
    assert frames[3]["event"]["n"] == 6


def test_frames_are_shared_by_event_not_by_position() -> None:
    # Events read back from the log for one client all have hub seq 0: each must still
    # get its own frame.
    cache = _FrameCache()
    one, two = Event(0, "a", "nova/x", "t", b'{"id":"a"}'), Event(0, "b", "nova/x", "t",
                                                                  b'{"id":"b"}')
    assert cache.frames([one], True) == [text_frame(one.ws_frame.encode())]
    assert cache.frames([two], True) == [text_frame(two.ws_frame.encode())]
    assert cache.frames([one, two], True) != cache.frames([two, one], True)
    assert text_frame(b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"


async def test_a_resuming_batch_client_gets_its_backlog_in_one_frame(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway()
    async with ws_client(gateway.ws_url(["nova/#"])) as websocket:
        await gateway.publish([event("compute.host1", f"{name}.{i}", {"i": i})
                               for i in range(5)])
        sent = await ws_events(websocket, 5)
    url = gateway.ws_url(["nova/#"], since=sent[0]["id"]) + "&batch=1"
    async with ws_client(url) as websocket:
        frame = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
        await gateway.publish(event("compute.host1", f"{name}.live", {"i": 5}))
        live = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
    assert frame["kind"] == "events" and frame["count"] == 4
    assert [e["id"] for e in frame["events"]] == [e["id"] for e in sent[1:]]
    assert live["kind"] == "event" and live["event"]["data"] == {"i": 5}
