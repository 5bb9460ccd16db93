"""What the gateway emits, read by clients it did not write: the official CloudEvents SDKs
for Python (PyPI ``cloudevents``) and JavaScript (npm ``cloudevents``) over SSE, WebSocket
and MQTT 5, and paho-mqtt over Mosquitto's WebSocket listener. Publisher ids with a space,
``%``, ``"`` and non-ASCII characters must still give events both SDKs accept."""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from firehose_support import WAIT, GatewayProcess, Mosquitto, SSEClient, event, ws_client
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from test_gateway_mqtt_resilience import next_message, v5_subscriber
from websockets.asyncio.client import ClientConnection

pytestmark = pytest.mark.broker

CHECKER = Path(__file__).resolve().parents[1] / "interop" / "node" / "cloudevents_check.js"
PUBLISHERS = ["nova compute", "100%", 'say "hi"', "zürich-nœud", "日本"]
STRUCTURED = JSONFormat.CONTENT_TYPE  # application/cloudevents+json, the SDK's own constant


def javascript_sdk(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each message parsed (strictly) and validated by the npm cloudevents SDK."""
    result = subprocess.run(["node", str(CHECKER)], input=json.dumps(messages),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def python_sdk(content_type: str | None, body: bytes) -> Any:
    """The event as the PyPI cloudevents SDK reads a structured-mode message."""
    assert content_type is not None
    return from_http(HTTPMessage(headers={"content-type": content_type}, body=body),
                     JSONFormat())


async def _sse_data(sse: SSEClient, count: int) -> list[str]:
    found: list[str] = []
    while len(found) < count:
        message = await sse.message()
        if message["event"] == "message":
            found.append(message["data"])
    return found


async def _ws_events(websocket: ClientConnection, count: int) -> list[str]:
    found: list[str] = []
    async with asyncio.timeout(WAIT):
        while len(found) < count:
            frame = json.loads(await websocket.recv())
            if frame["kind"] == "event":
                found.append(json.dumps(frame["event"], ensure_ascii=False))
    return found


async def test_both_cloudevents_sdks_accept_every_event_on_every_channel(
        mosquitto: Mosquitto, start_gateway: Callable[..., GatewayProcess],
        node_modules: Path) -> None:
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)
    sse = await SSEClient.open(gateway.port, "/events")
    try:
        async with ws_client(gateway.ws_url()) as websocket, \
                v5_subscriber(mosquitto.port, "#") as mqtt:
            await gateway.publish([event(p, "sdk.check", {"publisher": p})
                                   for p in PUBLISHERS])
            sse_bodies = await _sse_data(sse, len(PUBLISHERS))
            ws_bodies = await _ws_events(websocket, len(PUBLISHERS))
            mqtt_messages = [await next_message(mqtt) for _ in PUBLISHERS]
    finally:
        await sse.close()

    # SSE and WebSocket carry one structured-mode event each; MQTT 5 says so with its
    # Content Type property (the CloudEvents MQTT binding), which the JS SDK insists on.
    messages = [{"binding": "http", "contentType": STRUCTURED, "body": body}
                for body in sse_bodies + ws_bodies]
    for received in mqtt_messages:
        assert isinstance(received.payload, bytes) and received.properties is not None
        content_type = received.properties.ContentType  # type: ignore[attr-defined]
        assert content_type == STRUCTURED
        messages.append({"binding": "mqtt", "contentType": content_type,
                         "body": received.payload.decode()})
    # A control, so a checker that accepts anything cannot pass: a raw space in source.
    messages.append({"binding": "http", "contentType": STRUCTURED, "body": json.dumps(
        {"specversion": "1.0", "id": "x", "source": "nova compute", "type": "t"})})

    *parsed, control = javascript_sdk(messages)
    assert not control["ok"] and "uri-reference" in control["error"]
    failures = [(m["body"], p["error"]) for m, p in zip(messages[:-1], parsed, strict=True)
                if not p["ok"]]
    assert not failures, failures
    count = len(PUBLISHERS)
    sse_events, ws_events, mqtt_events = (
        [p["event"] for p in parsed[start:start + count]] for start in (0, count, 2 * count))
    for events in (sse_events, ws_events, mqtt_events):  # the same events, in order
        assert [urllib.parse.unquote(e["source"]) for e in events] == PUBLISHERS
        assert [e["data"]["publisher"] for e in events] == PUBLISHERS
        assert [e["id"] for e in events] == [e["id"] for e in sse_events]

    for message in messages[:-1]:
        body = message["body"].encode()
        python = python_sdk(message["contentType"], body)
        original = json.loads(body)
        assert python.get_id() == original["id"] and python.get_type() == "sdk.check"
        assert urllib.parse.unquote(python.get_source()) == original["data"]["publisher"]
        assert python.get_extension("firehosetopic") == original["firehosetopic"]
        assert python.get_time() is not None and python.get_data() == original["data"]


class PahoOverWebSockets:
    """paho-mqtt, MQTT 5 over a WebSocket, subscribed to ``#`` (SUBACK awaited)."""

    def __init__(self, port: int) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, transport="websockets",
                                  protocol=paho.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda client, userdata, message: self.messages.put(message)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT), "paho never got its SUBACK over WebSockets"

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any,
                    reason: ReasonCode, properties: Properties | None) -> None:
        assert not reason.is_failure, reason
        client.subscribe("#", qos=1)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      reasons: list[ReasonCode], properties: Properties | None) -> None:
        self._subscribed.set()

    def next(self) -> paho.MQTTMessage:
        return self.messages.get(timeout=WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_paho_over_websockets_reads_what_the_gateway_publishes(
        mosquitto: Mosquitto, start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)
    client = await asyncio.to_thread(PahoOverWebSockets, mosquitto.ws_port)
    try:
        await gateway.publish(event("compute.host1", "compute.instance.create.end",
                                    {"instance_id": 52}))
        message = await asyncio.to_thread(client.next)
    finally:
        await asyncio.to_thread(client.close)
    assert message.topic == "nova/compute.host1/compute/instance/create/end"
    assert message.properties.ContentType == STRUCTURED  # type: ignore[union-attr]
    cloud_event = python_sdk(message.properties.ContentType,  # type: ignore[union-attr]
                             bytes(message.payload))
    assert cloud_event.get_data() == {"instance_id": 52}
    assert cloud_event.get_source() == "compute.host1"
