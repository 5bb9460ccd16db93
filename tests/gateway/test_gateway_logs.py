"""Tokens never reach the gateway's log, at any level (found by the firehose-access scenario).

The HTTP server logs each WebSocket's request line with its query string at INFO, and every
request header at DEBUG: a browser's ``?token=`` and a script's ``Authorization`` header
were written out in full.
"""

from __future__ import annotations

import logging

import pytest
from firehose_support import SSEClient, ws_client

import relaybus
from relaybus.gateway import Gateway, GatewayOptions
from relaybus.gateway.auth import redact

TOKEN = "pub-4f1c0ffee"


@pytest.mark.parametrize("line, masked", [
    ("< GET /ws?token=pub-4f1c0ffee HTTP/1.1", "< GET /ws?token=*** HTTP/1.1"),
    ('1.2.3.4:5 - "WebSocket /ws?topic=a%2F%23&token=pub-4f1c0ffee" [accepted]',
     '1.2.3.4:5 - "WebSocket /ws?topic=a%2F%23&token=***" [accepted]'),
    ("/events?token=pub-4f1c0ffee&topic=x", "/events?token=***&topic=x"),
    ("< authorization: Bearer pub-4f1c0ffee", "< authorization: Bearer ***"),
    ("< Authorization: pub-4f1c0ffee", "< Authorization: ***"),
    ("/ws?mytoken=kept&topic=x", "/ws?mytoken=kept&topic=x"),
])
def test_redact(line: str, masked: str) -> None:
    assert redact(line) == masked


async def test_no_token_in_any_log_line_of_the_gateway(caplog: pytest.LogCaptureFixture,
                                                       request: pytest.FixtureRequest) -> None:
    caplog.set_level(logging.DEBUG)
    async with await relaybus.connect(f"memory://{request.node.name}") as bus, \
            Gateway(bus, GatewayOptions(http="127.0.0.1:0",
                                        publish_token=TOKEN)).running() as gateway:
        base = f"ws://127.0.0.1:{gateway.port}/ws"
        async with ws_client(f"{base}?token={TOKEN}"), \
                ws_client(base, additional_headers={"Authorization": f"Bearer {TOKEN}"}):
            pass
        sse = await SSEClient.open(gateway.port, f"/events?token={TOKEN}")
        assert sse.status == 200
        await sse.close()
    # The client library logs its own request at DEBUG: only the gateway's lines count.
    lines = [r.getMessage() for r in caplog.records if not r.name.startswith("websockets")]
    assert not [line for line in lines if TOKEN in line]
    assert any("/ws?token=***" in line for line in lines)
    assert any("authorization: bearer ***" in line.lower() for line in lines)
