"""Scenario 9, the firehose's part: anonymous publishing to its MQTT and HTTP sides.

A Mosquitto started from the shipped example configuration (deploy/mosquitto: anyone may
subscribe, only the gateway's user may publish) and a gateway publishing to it with its own
password and accepting a publish token. Then, with an anonymous MQTT subscriber and a
WebSocket watcher listening, the forgeries:

- MQTT: an anonymous QoS 1 publish over MQTT 5 (TCP, and MQTT over WebSockets) must get one
  PUBACK "Not authorized", quickly, sent once; over MQTT 3.1.1, which cannot say no, the
  broker drops it;
- HTTP: ``POST /publish`` without a token (403), with a wrong token in the Authorization
  header and in ``?token=`` (401), also spelt ``?%74oken=`` (the server decodes keys, so the
  log redaction must too); ``/ws`` publishing without a token (an error frame and close 4403)
  and with a wrong token (4401, in each spelling): each one answer, quickly, then nothing.

Then two genuine events (``POST /publish`` with the token in a header; ``/ws?token=`` as a
browser sends it) must be the only ones any subscriber sees. The secrets (the gateway's
MQTT password, the publish token) reach the gateway through its environment, as deployed.
Every log line is kept, at DEBUG: the gateway's (its process logs everything to a file), the
clients' (this process's root logger) and Mosquitto's; neither secret may appear in any, and
the wrong token a client presented may not appear in the gateway's or the broker's.

Figures: ``sent`` forged publish attempts; ``confirmed`` those accepted (0: MQTT 3.1.1's
PUBACK, which cannot refuse, is counted as a drop); ``received`` forged events a subscriber
saw (0); ``errors`` the refusals by kind; ``recovery_s`` the slowest refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
from figures import Figures
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from transports import unique
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from firehose_support import WAIT, GatewayProcess, Mosquitto, event, start_mosquitto, ws_client
from test_gateway_mqtt import received, subscriber

FAST = 2.0  # seconds a refusal may take
GATEWAY_AT_DEBUG = (
    "import logging, os\n"
    "logging.basicConfig(level=logging.DEBUG, handlers=[logging.FileHandler(\n"
    "    os.environ['RELIABILITY_GATEWAY_LOG'])],\n"
    "    format='%(asctime)s %(levelname)s %(name)s: %(message)s')\n"
    "from relaybus.cli.main import cli\n"
    "cli(prog_name='relaybus')\n")


class _AllLogs(logging.Handler):
    """Every record of this process, formatted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def _capture() -> Iterator[_AllLogs]:
    """Every log record at DEBUG, while the existing handlers show no more than before."""
    logs, root = _AllLogs(), logging.getLogger()
    previous = root.level
    quieted = [(h, h.level) for h in root.handlers]
    for handler, level in quieted:
        handler.setLevel(max(level, previous))
    root.addHandler(logs)
    root.setLevel(logging.DEBUG)
    try:
        yield logs
    finally:
        root.removeHandler(logs)
        root.setLevel(previous)
        for handler, level in quieted:
            handler.setLevel(level)


def _own_credential_logger(name: str) -> logging.Logger:
    """For the genuine clients: their libraries log, at DEBUG, the credential they were given
    (websockets logs its request line and headers); that copy is theirs, not a leak."""
    logger = logging.getLogger(f"firehose-access.own-credential.{name}")
    logger.propagate = False
    return logger


@dataclass
class _Attempt:
    """One forged publish and what came of it."""

    label: str
    elapsed: float
    refused: bool
    answer: str
    once: bool  # one answer, nothing sent twice


@contextlib.contextmanager
def _record(logger: logging.Logger) -> Iterator[list[str]]:
    """The messages ``logger`` logs inside the block (they still reach the root too)."""
    lines: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = _Keep(logging.DEBUG)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def _mqtt_forgery(port: int, topic: str, label: str, *, protocol: paho.MQTTProtocolVersion,
                  transport: Literal["tcp", "websockets"] = "tcp") -> _Attempt:
    """An anonymous QoS 1 publish; what the broker answered, and how often it was sent."""
    logger = logging.getLogger(f"firehose-access.mqtt.{label}")
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol, transport=transport)
    client.enable_logger(logger)
    connected, answered = threading.Event(), threading.Event()
    answers: list[ReasonCode] = []

    def on_publish(client: paho.Client, userdata: Any, mid: int, reason: ReasonCode,
                   properties: Any) -> None:
        answers.append(reason)
        answered.set()

    client.on_connect = lambda *_: connected.set()
    client.on_publish = on_publish
    started = time.monotonic()
    with _record(logger) as lines:
        client.connect("127.0.0.1", port)
        client.loop_start()
        try:
            if connected.wait(WAIT):
                client.publish(topic, json.dumps({"forged": label}).encode(), qos=1)
                answered.wait(WAIT)
            elapsed = time.monotonic() - started
        finally:
            client.disconnect()
            client.loop_stop()
    sends = [line for line in lines if "Sending PUBLISH" in line]
    reason = answers[0] if answers else None
    return _Attempt(label, elapsed, reason is not None and reason.is_failure,
                    "no answer" if reason is None else f"PUBACK {reason.getName()}",
                    len(answers) == 1 and len(sends) == 1 and "(d1" not in sends[0])


async def _http_forgery(gateway: GatewayProcess, label: str, path: str,
                        headers: dict[str, str], expected: tuple[int, str]) -> _Attempt:
    started = time.monotonic()
    status, body = await asyncio.to_thread(gateway.request, "POST", path,
                                           event("forger", "forged.http", {"forged": label}),
                                           headers)
    elapsed = time.monotonic() - started
    error = body.get("error") if isinstance(body, dict) else None
    return _Attempt(label, elapsed, (status, error) == expected,
                    f"HTTP {status} {error}: {body.get('message') if error else body}", True)


async def _ws_forgery(url: str, label: str, expected: tuple[int, str],
                      **options: Any) -> _Attempt:
    """Connect, ask to publish at once, read until the gateway closes."""
    started = time.monotonic()
    frames: list[dict[str, Any]] = []
    code = None
    async with connect(url, **options) as websocket:
        with contextlib.suppress(ConnectionClosed):
            await websocket.send(json.dumps({"action": "publish",
                                             "event": event("forger", "forged.ws",
                                                            {"forged": label})}))
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    frame = json.loads(await websocket.recv())
                    if frame["kind"] != "hello":
                        frames.append(frame)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
    elapsed = time.monotonic() - started
    errors = [f.get("error") for f in frames]
    message = frames[0].get("message") if frames else None
    return _Attempt(label, elapsed, (code, errors) == (expected[0], [expected[1]]),
                    f"WS close {code} {' '.join(map(str, errors))}: {message}", len(frames) == 1)


async def _forge(figures: Figures, mosquitto: Mosquitto, gateway: GatewayProcess,
                 topic: str, wrong: str) -> list[_Attempt]:
    attempts = [
        await asyncio.to_thread(_mqtt_forgery, mosquitto.port, topic, "MQTT 5 anonymous",
                                protocol=paho.MQTTv5),
        await asyncio.to_thread(_mqtt_forgery, mosquitto.ws_port, topic,
                                "MQTT 5 over WebSockets anonymous", protocol=paho.MQTTv5,
                                transport="websockets"),
        await asyncio.to_thread(_mqtt_forgery, mosquitto.port, topic, "MQTT 3.1.1 anonymous",
                                protocol=paho.MQTTv311),
        await _http_forgery(gateway, "POST without a token", "/publish", {},
                            (403, "forbidden")),
        await _http_forgery(gateway, "POST, wrong Bearer token", "/publish",
                            {"Authorization": f"Bearer {wrong}"}, (401, "bad-token")),
        await _http_forgery(gateway, "POST, wrong ?token=", f"/publish?token={wrong}", {},
                            (401, "bad-token")),
        await _http_forgery(gateway, "POST, wrong ?%74oken= (the key percent-encoded)",
                            f"/publish?%74oken={wrong}", {}, (401, "bad-token")),
        await _ws_forgery(gateway.ws_url(), "/ws publish without a token",
                          (4403, "forbidden")),
        await _ws_forgery(gateway.ws_url(token=wrong), "/ws, wrong ?token=",
                          (4401, "bad-token")),
        await _ws_forgery(f"{gateway.ws_url()}?%74oken={wrong}",
                          "/ws, wrong ?%74oken= (the key percent-encoded)", (4401, "bad-token")),
        await _ws_forgery(gateway.ws_url(), "/ws, wrong Bearer token", (4401, "bad-token"),
                          additional_headers={"Authorization": f"Bearer {wrong}"}),
    ]
    for attempt in attempts:
        figures.sent += 1
        if attempt.refused:
            figures.error(attempt.answer.split(":")[0])
        legacy = " (3.1.1 has no refusal: the broker drops it)" if "3.1.1" in attempt.label else ""
        figures.notes.append(f"{attempt.label}: {attempt.answer} in "
                             f"{attempt.elapsed * 1000:.0f} ms{legacy}")
    return attempts


async def _genuine(gateway: GatewayProcess, token: str, exchange: str) -> None:
    """Two real events: POST with the token in a header; /ws?token= as a browser sends it."""
    await gateway.publish(event("genuine.http", "genuine.event", {"n": 1}), token=token)
    async with ws_client(gateway.ws_url([f"{exchange}/nobody/#"], token=token),
                         logger=_own_credential_logger("publisher")) as websocket:
        await websocket.send(json.dumps({"action": "publish", "ref": 2,
                                         "event": event("genuine.ws", "genuine.event",
                                                        {"n": 2})}))
        async with asyncio.timeout(WAIT):
            answer = json.loads(await websocket.recv())
    assert answer == {"kind": "published", "count": 1, "ref": 2}, answer


def _forged(payload: Any) -> bool:
    return "forged" in json.dumps(payload)


async def _exercise(figures: Figures, mosquitto: Mosquitto, gateway: GatewayProcess,
                    exchange: str, token: str, wrong: str) -> dict[str, Any]:
    """The forgeries, then the genuine events; what the subscribers and the gateway saw."""
    watcher_options = {"additional_headers": {"Authorization": f"Bearer {token}"},
                       "logger": _own_credential_logger("watcher")}
    async with subscriber(mosquitto.anonymous_url, "#") as mqtt, \
            ws_client(gateway.ws_url([f"{exchange}/#"]), **watcher_options) as watcher:
        attempts = await _forge(figures, mosquitto, gateway,
                                f"{exchange}/forger/forged/mqtt", wrong)
        await _genuine(gateway, token, exchange)
        # Whatever got through was sent before the genuine events: it would come first.
        messages = [json.loads(m.payload) for m in await received(mqtt, 2)]  # type: ignore[arg-type]
        async with asyncio.timeout(WAIT):
            frames = [json.loads(await watcher.recv()) for _ in range(2)]
    documents = [await gateway.stats(),
                 (await asyncio.to_thread(gateway.request, "GET", "/healthz"))[1]]
    return {"attempts": attempts, "mqtt": messages, "watcher": frames, "documents": documents}


def _leaks(lines: list[str], *secrets: str) -> list[str]:
    return [line for line in lines if any(secret in line for secret in secrets)]


def _check(figures: Figures, seen: dict[str, Any], logs: dict[str, list[str]],
           secrets: tuple[str, str], wrong: str, exit_code: int | None) -> None:
    attempts: list[_Attempt] = seen["attempts"]
    legacy = [a for a in attempts if "3.1.1" in a.label]
    refusable = [a for a in attempts if a not in legacy]
    figures.confirmed = sum(1 for a in refusable if not a.refused)
    figures.recovery_s = max(a.elapsed for a in attempts)
    for attempt in refusable:
        figures.check(f"{attempt.label}: refused once in under {FAST:.0f} s",
                      attempt.refused and attempt.once and attempt.elapsed < FAST)
    for attempt in legacy:
        figures.check(f"{attempt.label}: answered once in under {FAST:.0f} s, then dropped",
                      attempt.once and attempt.elapsed < FAST)
    events = [f.get("event", f) for f in seen["watcher"]]
    figures.received = sum(1 for p in seen["mqtt"] + events if _forged(p))
    figures.check("no subscriber saw a forged event; both genuine ones arrived",
                  figures.received == 0
                  and [p["source"] for p in seen["mqtt"]] == ["genuine.http", "genuine.ws"]
                  and [e.get("source") for e in events] == ["genuine.http", "genuine.ws"])
    stats = seen["documents"][0]
    figures.check("the gateway took the genuine events only",
                  stats["events_in"] == 2 and stats["published_via_gateway"] == 2)
    answers = [a.answer for a in attempts] + [json.dumps(d) for d in seen["documents"]]
    figures.check("no secret in any answer, /stats or /healthz", not _leaks(answers, *secrets))
    figures.check("the gateway's log covers its MQTT login (URL masked)",
                  any("publishing to mqtt://firehose:***@" in line
                      for line in logs["the gateway's"]))
    for source, lines in logs.items():
        leaked = _leaks(lines, *secrets)
        figures.check(f"no secret in {source} log lines", not leaked)
        if leaked:
            figures.notes.append(f"{source} log leaked: {leaked[0][:160]}")
    for source in ("the gateway's", "the broker's"):
        leaked = _leaks(logs[source], wrong)
        figures.check(f"the wrong token presented not in {source} log lines", not leaked)
        if leaked:
            figures.notes.append(f"{source} log has the wrong token: {leaked[0][:160]}")
    figures.notes.append("log lines checked: " + ", ".join(
        f"{source} {len(lines)}" for source, lines in logs.items()) + " (gateway at DEBUG)")
    figures.check("the gateway stopped cleanly", exit_code == 0)


async def run(transport: str, url: str) -> Figures:
    figures = Figures("firehose access", transport)
    exchange = unique("access")
    password, token, wrong = (f"{kind}-{uuid.uuid4().hex}" for kind in ("mqttpw", "pub", "wrong"))
    workdir = Path(tempfile.mkdtemp(prefix="relaybus-firehose-access-"))
    os.chmod(workdir, 0o755)  # Mosquitto, dropping root, reads its files below it
    gateway_log = workdir / "gateway.log"
    mosquitto: Mosquitto | None = None
    gateway: GatewayProcess | None = None
    exit_code = None
    with _capture() as logs:
        try:
            mosquitto = await asyncio.to_thread(start_mosquitto, workdir / "mosquitto", password)
            gateway = GatewayProcess(
                ["--bus", f"memory://?control_exchange={exchange}"],
                program=[sys.executable, "-c", GATEWAY_AT_DEBUG, "firehose"],
                env={"RELAYBUS_FIREHOSE_MQTT": mosquitto.gateway_url,
                     "RELAYBUS_FIREHOSE_PUBLISH_TOKEN": token,
                     "RELIABILITY_GATEWAY_LOG": str(gateway_log)})
            await asyncio.to_thread(gateway.start)
            seen = await _exercise(figures, mosquitto, gateway, exchange, token, wrong)
        finally:
            if gateway is not None and gateway.process is not None:
                exit_code = await asyncio.to_thread(gateway.stop)
            if mosquitto is not None:
                await asyncio.to_thread(mosquitto.stop)
            gateway_lines = (gateway_log.read_text().splitlines() if gateway_log.exists()
                             else [])
            shutil.rmtree(workdir, ignore_errors=True)
    everything = {
        "the gateway's": gateway_lines + (gateway.output().splitlines() if gateway else []),
        "the clients'": logs.lines,
        "the broker's": mosquitto.log.lines if mosquitto else [],
    }
    _check(figures, seen, everything, (password, token), wrong, exit_code)
    return figures
