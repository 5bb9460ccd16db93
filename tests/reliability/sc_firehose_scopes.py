"""Scenario firehose-scope-escape: a client with a scoped token tries to reach beyond it.

One gateway with a tokens file: ``compute`` may subscribe to and publish on
``nova/compute/#`` only. An unscoped watcher (the publish token) sees everything. The scoped
client then tries every way out it has:

- subscribing, over WebSocket and SSE, with wider filters spelt every way the gateway reads
  them (``#``, ``+/#``, ``nova/+/#``, ``nova/#``, no filter at all, ``filter=`` form-encoded,
  ``?%74oken=`` for the key): each is narrowed to the scope, or refused when it shares no
  topic with it (``keystone/#``, ``nova/identity/#``, one such filter among good ones);
- publishing outside the scope: one event, a batch of 999 allowed events smuggling one
  outside, over /ws, with the token's key percent-encoded.

Then the watcher publishes 10 ``compute`` and 10 ``identity`` events, interleaved, and an end
marker. Every narrowed or accepted subscription must get the 10 ``compute`` events and not
one ``identity`` event; the watcher must see none of the refused publishes.

Figures: ``sent`` escape attempts; ``confirmed`` subscriptions accepted (narrowed or inside
the scope); ``received`` events outside the scope a scoped client saw (0); ``lost`` in-scope
events an accepted subscription missed (0); ``errors`` the refusals by reason;
``recovery_s`` the slowest refusal.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from figures import Figures
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from firehose_support import WAIT, GatewayProcess, SSEClient, event, ws_client, ws_events

SCOPED, WATCHER = "compute-scoped-token", "watcher-publish-token"
TOKENS = f"""
[[token]]
name = "compute"
token = "{SCOPED}"
subscribe = ["nova/compute/#"]
publish = ["nova/compute/#"]
"""
WIDER = ["topic=%23", "filter=%23", "topic=%2B/%23", "topic=nova/%2B/%23", "topic=nova/%23",
         "filter=%2B%2F%2B%2F%23", "", "topic=nova/compute/%23"]
OUTSIDE = ["topic=keystone/%23", "topic=nova/identity/%23",
           "topic=nova/compute/%23&topic=nova/identity/%23", "filter=nova%2Fidentity%2F%2B"]
EACH = 10


def _query(query: str, key: str = "token") -> str:
    return "&".join(filter(None, [query, f"{key}={SCOPED}"]))


async def _open_ws(port: int, query: str) -> tuple[Any, dict[str, Any]]:
    websocket = await connect(f"ws://127.0.0.1:{port}/ws?{_query(query, '%74oken')}")
    first = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
    return websocket, first


async def _read_ws(websocket: Any) -> list[str]:
    sources: list[str] = []
    async with asyncio.timeout(WAIT):
        while True:
            frame = json.loads(await websocket.recv())
            if frame["kind"] == "event":
                if frame["event"]["type"] == "end":
                    return sources
                sources.append(frame["event"]["source"])


async def _read_sse(sse: SSEClient) -> list[str]:
    sources: list[str] = []
    while True:
        message = await sse.message()
        if message["event"] == "message":
            data = json.loads(message["data"])
            if data["type"] == "end":
                return sources
            sources.append(data["source"])


async def _post(gateway: GatewayProcess, body: Any, query: str = "") -> tuple[int, Any]:
    path = "/publish" + (f"?{query}" if query else "")
    headers = {} if query else {"Authorization": f"Bearer {SCOPED}"}
    return await asyncio.to_thread(gateway.request, "POST", path, body, headers)


async def run(transport: str, url: str) -> Figures:
    figures = Figures("firehose scope escape", transport)
    workdir = Path(tempfile.mkdtemp(prefix="relaybus-scopes-"))
    (workdir / "tokens.toml").write_text(TOKENS)
    gateway = GatewayProcess(["--bus", "memory://?control_exchange=nova", "--publish-token",
                              WATCHER, "--tokens-file", str(workdir / "tokens.toml")])
    await asyncio.to_thread(gateway.start)
    slowest = 0.0
    websockets: list[Any] = []
    streams: list[SSEClient] = []
    try:
        async with ws_client(gateway.ws_url(token=WATCHER)) as watcher:
            for query in WIDER + OUTSIDE:
                began = time.monotonic()
                websocket, first = await _open_ws(gateway.port, query)
                sse = await SSEClient.open(gateway.port, f"/events?{query}",
                                           {"Authorization": f"Bearer {SCOPED}"})
                for kind, accepted, opened in (("ws", first["kind"] == "hello", websocket),
                                               ("sse", sse.status == 200, sse)):
                    figures.sent += 1
                    if accepted:
                        figures.confirmed += 1
                        (websockets if kind == "ws" else streams).append(opened)
                        continue
                    error = first["error"] if kind == "ws" else (await sse.body())["error"]
                    figures.error(error)
                    slowest = max(slowest, time.monotonic() - began)
                    await (websocket.close() if kind == "ws" else sse.close())
                figures.check(f"{query or 'no filter'}: accepted on both or refused on both",
                              (first["kind"] == "hello") == (sse.status == 200))
            figures.check("every wider filter accepted (narrowed), every outside one refused",
                          figures.confirmed == 2 * len(WIDER))

            # Publishing outside the scope, every way.
            outside = event("identity", "escape.single")
            smuggled = [event("compute", f"escape.batch.{i}") for i in range(999)]
            smuggled.insert(500, event("identity", "escape.smuggled"))
            attempts = [_post(gateway, outside), _post(gateway, smuggled),
                        _post(gateway, outside, f"%74oken={SCOPED}"),
                        _post(gateway, event("identity", "escape.anonymous"), "x=1")]
            for attempt in attempts:
                began = time.monotonic()
                status, body = await attempt
                slowest = max(slowest, time.monotonic() - began)
                figures.sent += 1
                figures.error(body.get("error", str(status)) if isinstance(body, dict)
                              else str(status))
                figures.check(f"a publish outside the scope is refused ({status})",
                              status in (401, 403))
            async with connect(gateway.ws_url(["nova/compute/#"], token=SCOPED)) as publisher:
                await asyncio.wait_for(publisher.recv(), WAIT)  # hello
                began = time.monotonic()
                await publisher.send(json.dumps({"action": "publish",
                                                 "event": event("identity", "escape.ws")}))
                error = json.loads(await asyncio.wait_for(publisher.recv(), WAIT))
                await publisher.wait_closed()
                slowest = max(slowest, time.monotonic() - began)
                figures.sent += 1
                figures.error(error["error"])
                figures.check("a /ws publish outside the scope closes 4403",
                              publisher.close_code == 4403)

            # The genuine stream: compute and identity interleaved, then the end marker.
            genuine = [event("compute" if i % 2 else "identity", f"genuine.{i}")
                       for i in range(2 * EACH)]
            await gateway.publish([*genuine, event("compute", "end")], WATCHER)
            seen = await ws_events(watcher, 2 * EACH + 1)
            figures.check("the watcher saw the genuine events and none of the refused ones",
                          [e["type"] for e in seen] == [e["type"] for e in genuine] + ["end"])
            results = await asyncio.gather(*[_read_ws(w) for w in websockets],
                                           *[_read_sse(s) for s in streams])
            for sources in results:
                figures.received += sum(source != "compute" for source in sources)
                figures.lost += max(0, EACH - sources.count("compute"))
            figures.check("no scoped client saw an event outside its scope",
                          figures.received == 0)
            figures.check("every accepted subscription got every in-scope event",
                          figures.lost == 0 and len(results) == figures.confirmed)
        status, stats = await asyncio.to_thread(
            gateway.request, "GET", "/stats", None, {"Authorization": f"Bearer {WATCHER}"})
        refused = stats["auth"]["refused"]
        figures.check("/stats counts every refusal by reason",
                      refused.get("subscribe-out-of-scope") == 2 * len(OUTSIDE)
                      and refused.get("publish-out-of-scope") == 4)
        figures.recovery_s = round(slowest, 3)
        figures.notes.append(
            f"{len(WIDER)} wider filters x (WS, SSE) narrowed, {len(OUTSIDE)} outside ones x "
            f"(WS, SSE) refused; /stats auth.refused {json.dumps(refused, sort_keys=True)}")
    finally:
        for websocket in websockets:
            await websocket.close()
        for sse in streams:
            await sse.close()
        await asyncio.to_thread(gateway.stop)
        await asyncio.to_thread(shutil.rmtree, workdir, True)
    figures.check("the gateway stopped cleanly", gateway.process is not None
                  and gateway.process.returncode == 0)
    return figures
