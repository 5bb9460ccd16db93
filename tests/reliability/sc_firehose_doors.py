"""Scenario firehose-doors: hostile HTTP clients against the gateway's open doors.

One gateway (``--write-timeout 2 --header-timeout 2 --max-connections 200``) and one healthy
WebSocket client that must get every event throughout. Then:

1. ``stuck`` WebSocket and SSE clients that never read while ``sent`` events of 8 KB go
   out: each is let go once a write stalls (``recovery_s``: the slowest, from the last event
   to it being let go), and the gateway's resident memory afterwards is reported in the
   notes against before.
2. ``slow`` slowloris connections that never finish their headers: all closed by the
   header timeout, while /healthz answers throughout.
3. Connections past the limit: each answered ``503 busy`` at once (``errors``).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

from figures import Figures

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from firehose_support import GatewayProcess, event, ws_client, ws_events
from test_gateway_connections import _get, _slowloris
from test_gateway_stream import _stalled_websocket
from test_gateway_stuck_readers import _stalled_sse

STUCK, SLOW, EVENTS, LIMIT = 10, 50, 1200, 200


def _rss_kb(gateway: GatewayProcess) -> int:
    assert gateway.process is not None
    for line in Path(f"/proc/{gateway.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _stats(gateway: GatewayProcess) -> dict[str, object]:
    return await gateway.stats()


async def run(transport: str, url: str) -> Figures:
    figures = Figures("firehose doors", transport)
    gateway = GatewayProcess(["--bus", "memory://?control_exchange=nova",
                              "--publish-token", "t", "--write-timeout", "2",
                              "--header-timeout", "2", "--max-connections", str(LIMIT)])
    await asyncio.to_thread(gateway.start)
    held: list[socket.socket] = []
    try:
        before = _rss_kb(gateway)
        async with ws_client(gateway.ws_url()) as healthy:
            for i in range(STUCK):
                held.append(await asyncio.to_thread(
                    _stalled_websocket if i % 2 else _stalled_sse, gateway.port,
                    *(["/ws?topic=nova/%23"] if i % 2 else [])))
            for start in range(0, EVENTS, 100):
                await gateway.publish([event("h", f"e{i}", {"pad": "x" * 8000})
                                       for i in range(start, start + 100)], "t")
            figures.sent = EVENTS
            sent_at = time.monotonic()
            got = await ws_events(healthy, EVENTS)
            figures.received = len(got)
            figures.check("the healthy client got every event", len(got) == EVENTS)
            async with asyncio.timeout(30):
                while True:  # polling /stats
                    stats = await _stats(gateway)
                    if stats["stalled_clients_let_go"] >= STUCK:  # type: ignore[operator]
                        break
                    await asyncio.sleep(0.05)
            figures.recovery_s = round(time.monotonic() - sent_at, 3)
            figures.check("every stuck client was let go", True)
            figures.notes.append(f"RSS {before // 1024} MB before, {_rss_kb(gateway) // 1024} MB"
                                 f" with {STUCK} stuck clients let go ({EVENTS} x 8 KB sent)")
            for sock in held:
                sock.close()
            held.clear()
            slow = [asyncio.to_thread(_slowloris, gateway.port) for _ in range(SLOW)]
            health = await asyncio.to_thread(_get, gateway.port, "/healthz")
            answers = await asyncio.gather(*slow)
            figures.check("/healthz answered during the slowloris",
                          health.startswith(b"HTTP/1.1 200"))
            figures.check("every slowloris connection was closed, unanswered",
                          all(a == b"" for a in answers))
            figures.errors["closed-slow-headers"] = SLOW
            # Past the limit: open LIMIT connections that send nothing, then ask.
            for _ in range(LIMIT):
                held.append(socket.create_connection(("127.0.0.1", gateway.port)))
            busy = await asyncio.gather(*[asyncio.to_thread(_get, gateway.port, "/healthz")
                                          for _ in range(20)])
            refused = sum(a.startswith(b"HTTP/1.1 503") and b"busy" in a for a in busy)
            figures.errors["503-busy"] = refused
            figures.check("past the limit every request got 503 busy", refused == len(busy))
    finally:
        for sock in held:
            sock.close()
        await asyncio.to_thread(gateway.stop)
    figures.check("the gateway stopped cleanly", gateway.process is not None
                  and gateway.process.returncode == 0)
    return figures
