"""Stuck readers are let go: a client that stops reading is disconnected once a write stalls
past --write-timeout (its queue freed), and told of the gap when it resumes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from firehose_support import GatewayProcess, event, ws_client, ws_events
from test_gateway_stream import _stalled_websocket

from relaybus.gateway.hub import Hub
from relaybus.gateway.replay import ReplayBuffer
from relaybus.gateway.topics import FilterSet


def _stalled_sse(port: int) -> socket.socket:
    """An SSE client that sends its request and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /events?topic=nova/%23 HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


async def test_stuck_websocket_and_sse_readers_are_let_go_and_resume_with_a_gap(
        start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway("--write-timeout", "1", "--replay-events", "100")
    stuck = [await asyncio.to_thread(_stalled_websocket, gateway.port, "/ws?topic=nova/%23"),
             await asyncio.to_thread(_stalled_sse, gateway.port)]
    total, batch, padding = 1200, 100, "x" * 8000  # ~10 MB: far past any socket buffer
    try:
        async with ws_client(gateway.ws_url(["nova/#"]), max_queue=None) as healthy:
            for start in range(0, total, batch):
                await gateway.publish([event("compute.host1", f"{name}.e{i}", {"pad": padding})
                                       for i in range(start, start + batch)])
            got = await ws_events(healthy, total)
            assert len(got) == total  # the healthy client is untouched
            async with asyncio.timeout(15):  # polling /stats: nothing else tells
                while True:
                    if (stats := await gateway.stats())["stalled_clients_let_go"] >= 2:
                        break
                    await asyncio.sleep(0.1)
            assert stats["clients"] == 1  # only the healthy one is left
        assert gateway.output().count("stopped reading") == 2
        # The stuck client comes back after the first event it saw: told of the gap.
        controls: list[dict[str, object]] = []
        async with ws_client(gateway.ws_url(["nova/#"], since=got[0]["id"])) as resumed:
            replayed = await ws_events(resumed, 100, controls)
        assert controls[0]["kind"] == "gap" and controls[0]["replayed"] == 100
        assert replayed[-1]["id"] == got[-1]["id"]
    finally:
        for sock in stuck:
            sock.close()



def test_a_client_queue_is_bounded_by_bytes_as_well_as_count() -> None:
    hub = Hub(ReplayBuffer(), client_queue=1000, client_bytes=10_000)
    subscriber = hub.subscribe("test", FilterSet.parse(["#"]))
    for seq in range(1, 101):
        hub.ingest(f"id{seq}", "nova/a", "a", b"x" * 1000)
    assert subscriber.queued_bytes <= 10_000 and subscriber.queued == 10
    assert subscriber.dropped_total == 90 and hub.counters.dropped == 90
    hub.unsubscribe(subscriber)
    assert subscriber.queued_bytes == 0 and subscriber.queued == 0
