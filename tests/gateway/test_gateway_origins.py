"""Which web pages may use the gateway: same origin by default, --allow-origin for others
(CORS on /events and /publish, preflight included), and the console's security headers."""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import Callable

import pytest
from firehose_support import PUBLISH_TOKEN, GatewayProcess, ws_client
from websockets.exceptions import InvalidStatus

UI = "http://ui.example.com:8080"
EVIL = "http://evil.example"


def _http(port: int, method: str, path: str,
          headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        response.read()  # whole answers only: /events is asked with OPTIONS or refused
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


async def test_ws_accepts_only_its_own_origin_by_default(
        start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = start_gateway()
    own = f"http://127.0.0.1:{gateway.port}"
    async with ws_client(gateway.ws_url(), origin=own):  # type: ignore[arg-type]
        pass
    async with ws_client(gateway.ws_url()):  # not a browser: no Origin at all
        pass
    with pytest.raises(InvalidStatus) as refused:
        async with ws_client(gateway.ws_url(), origin=EVIL):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    status, _ = await asyncio.to_thread(_http, gateway.port, "GET", "/events",
                                        {"Origin": EVIL})
    assert status == 403


async def test_an_allowed_origin_gets_cors_answers_and_the_websocket(
        start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = start_gateway("--allow-origin", UI)
    async with ws_client(gateway.ws_url(), origin=UI):  # type: ignore[arg-type]
        pass
    status, headers = await asyncio.to_thread(
        _http, gateway.port, "OPTIONS", "/publish",
        {"Origin": UI, "Access-Control-Request-Method": "POST",
         "Access-Control-Request-Headers": "authorization, content-type"})
    assert status == 204 and headers["access-control-allow-origin"] == UI
    assert "authorization" in headers["access-control-allow-headers"].lower()
    assert "POST" in headers["access-control-allow-methods"]
    status, headers = await asyncio.to_thread(
        _http, gateway.port, "POST", "/publish",
        {"Origin": UI, "Authorization": f"Bearer {PUBLISH_TOKEN}",
         "Content-Type": "application/json"})
    assert status == 400 and headers["access-control-allow-origin"] == UI  # empty body
    status, _ = await asyncio.to_thread(_http, gateway.port, "OPTIONS", "/publish",
                                        {"Origin": EVIL})
    assert status == 403


async def test_the_console_is_sent_with_security_headers(
        start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = start_gateway()
    status, headers = await asyncio.to_thread(_http, gateway.port, "GET", "/", {})
    assert status == 200
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
