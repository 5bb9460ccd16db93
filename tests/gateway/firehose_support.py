"""Real parts for the firehose tests: a Mosquitto of their own, the gateway as a process, clients.

Mosquitto runs with the shipped example configuration (deploy/mosquitto), only its ports
and file paths rewritten; the gateway runs as ``python -m relaybus firehose`` exactly as a
user would start it. Readiness is read from their own output, never guessed with sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from relaybus.testing.brokers import brokers_required

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "mosquitto"
WAIT = 15.0  # seconds an expected event may take before a test fails
PUBLISH_TOKEN = "test-publish-token"
MQTT_USER = "firehose"


def need_program(name: str) -> str:
    """The path of a program the test needs: skip without it (fail when CI requires it)."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists()
                                  else None)
    if path is None:
        message = f"{name} is not installed"
        if brokers_required():
            pytest.fail(f"{message} (.ci/run installs it)", pytrace=False)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Drain(threading.Thread):
    """Reads a child's pipe to the end (so it never blocks), keeping the last lines."""

    def __init__(self, stream: Any, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.stream = stream
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def run(self) -> None:
        for line in self.stream:
            with self._changed:
                self.lines.append(line)
                del self.lines[:-300]
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = WAIT) -> bool:
        """Whether a line containing ``text`` arrives (or has arrived) within ``timeout``."""
        with self._changed:
            return self._changed.wait_for(
                lambda: any(text in line for line in self.lines) or not self.is_alive(),
                timeout) and any(text in line for line in self.lines)


def _read_until(process: subprocess.Popen[str], stream: Any, marker: str) -> tuple[str, list[str]]:
    """Read lines until one contains ``marker``; fail with what was read if it exits first."""
    seen: list[str] = []
    for line in stream:
        seen.append(line)
        if marker in line:
            return line, seen
    process.wait(5)
    raise AssertionError(f"{process.args!r} exited ({process.returncode}) before {marker!r}:\n"
                         + "".join(seen))


@dataclass
class Mosquitto:
    """A Mosquitto started from the example configuration."""

    port: int
    ws_port: int
    password: str
    process: subprocess.Popen[str]
    log: _Drain
    workdir: Path | None = None

    @property
    def gateway_url(self) -> str:
        """The URL the gateway publishes with (its own credentials)."""
        return f"mqtt://{MQTT_USER}:{self.password}@127.0.0.1:{self.port}"

    @property
    def anonymous_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """SIGTERM until it exits. Mosquitto 2.0.11 misses a SIGTERM that comes soon after
        it says it is running (about half of the quick stops here: it then runs on for
        good); the next one always ends it."""
        for _ in range(10):
            self.process.terminate()
            try:
                self.process.wait(1)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            self.process.kill()
            self.process.wait(5)
        self.log.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def restart(self, extra: str = "") -> None:
        """Stop it and start it again, in place, on the same ports (``extra``: more
        configuration lines)."""
        assert self.workdir is not None
        self.stop()
        fresh = start_mosquitto(self.workdir, self.password, port=self.port,
                                ws_port=self.ws_port, extra=extra)
        self.process, self.log = fresh.process, fresh.log


def start_mosquitto(workdir: Path, password: str, *, port: int | None = None,
                    ws_port: int | None = None, extra: str = "") -> Mosquitto:
    """Mosquitto with deploy/mosquitto's config, ACL and a password file made as documented.

    Args:
        port, ws_port: its MQTT and WebSocket ports (None: free ones).
        extra: configuration lines added at the end (``max_packet_size 2000``).
    """
    binary = need_program("mosquitto")
    passwd_tool = need_program("mosquitto_passwd")
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)  # Mosquitto may drop root for its own user: let it read these
    port, ws_port = port or free_port(), ws_port or free_port()
    config = (DEPLOY / "mosquitto.conf").read_text()
    for old, new in [("/etc/mosquitto/relaybus/", f"{workdir}/"),
                     ("\nlistener 1883\n", f"\nlistener {port} 127.0.0.1\n"),
                     ("\nlistener 9001\n", f"\nlistener {ws_port} 127.0.0.1\n")]:
        assert old in config, f"the example configuration no longer has {old!r}"
        config = config.replace(old, new)
    (workdir / "mosquitto.conf").write_text(config + "\nlog_dest stderr\n" + extra + "\n")
    shutil.copy(DEPLOY / "acl", workdir / "acl")
    subprocess.run([passwd_tool, "-c", "-b", str(workdir / "passwd"), MQTT_USER, password],
                   check=True, capture_output=True, timeout=30)
    for name in ("acl", "passwd", "mosquitto.conf"):
        os.chmod(workdir / name, 0o644)
    process = subprocess.Popen([binary, "-c", str(workdir / "mosquitto.conf")],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert process.stderr is not None
    _, seen = _read_until(process, process.stderr, " running")
    log = _Drain(process.stderr, "mosquitto-log")
    log.lines.extend(seen)
    log.start()
    return Mosquitto(port, ws_port, password, process, log, workdir)


def _decoded(body: bytes) -> Any:
    """A response body: JSON when it is JSON, else its text."""
    try:
        return json.loads(body or b"null")
    except ValueError:
        return body.decode(errors="replace")


@dataclass
class GatewayProcess:
    """``relaybus firehose`` as a child process (or another program embedding the gateway).

    Args:
        args: its arguments (after ``--http``).
        program: the command before them (default ``python -m relaybus firehose``); it must
            take ``--http host:port`` and print ``console http://host:port/`` once serving.
    """

    args: list[str]
    program: list[str] = field(default_factory=lambda: [sys.executable, "-m", "relaybus",
                                                        "firehose"])
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[str] | None = None
    banner: str = ""
    stderr: _Drain | None = None
    stdout: _Drain | None = None

    def start(self) -> GatewayProcess:
        http = f"127.0.0.1:{self.port}"
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [*self.program, "--http", http, *self.args], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None and self.process.stderr is not None
        self.stderr = _Drain(self.process.stderr, "gateway-stderr")
        self.stderr.start()
        try:
            self.banner, _ = _read_until(self.process, self.process.stdout, "console http://")
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}\n{''.join(self.stderr.lines)}") from None
        self.stdout = _Drain(self.process.stdout, "gateway-stdout")
        self.stdout.start()
        self.port = int(self.banner.split("console http://127.0.0.1:")[1].split("/")[0])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def ws_url(self, topics: Sequence[str] = (), since: str | None = None,
               token: str | None = None) -> str:
        query = [("topic", t) for t in topics]
        query += [("since", since)] if since else []
        query += [("token", token)] if token else []
        encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?{encoded}" if encoded else "")

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """One blocking HTTP request; returns (status, decoded JSON body)."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=WAIT) as response:
                return response.status, _decoded(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, _decoded(exc.read())

    async def publish(self, events: dict[str, Any] | list[dict[str, Any]],
                      token: str = PUBLISH_TOKEN) -> None:
        """Publish through the gateway (it sends them on its bus as notifications)."""
        status, body = await asyncio.to_thread(
            self.request, "POST", "/publish", events, {"Authorization": f"Bearer {token}"})
        assert status == 202, body

    async def stats(self) -> dict[str, Any]:
        status, body = await asyncio.to_thread(self.request, "GET", "/stats")
        assert status == 200, body
        return body

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop it; returns its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(15)
        finally:
            for drain in (self.stdout, self.stderr):
                if drain is not None:
                    drain.join(5)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()

    def output(self) -> str:
        return "".join((self.stdout.lines if self.stdout else []) +
                       (self.stderr.lines if self.stderr else []))


def event(source: str, type_: str, data: Any = None, priority: str = "info") -> dict[str, Any]:
    """An event to publish through the gateway."""
    return {"source": source, "type": type_, "data": data, "priority": priority}


@contextlib.asynccontextmanager
async def ws_client(url: str, **options: Any) -> AsyncIterator[ClientConnection]:
    """A WebSocket connected to the gateway, its hello frame already read and checked."""
    async with connect(url, **options) as websocket:
        hello = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
        assert hello["kind"] == "hello", hello
        yield websocket


async def ws_events(websocket: ClientConnection, count: int,
                    controls: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The next ``count`` CloudEvents; control frames (gap, dropped) go to ``controls``."""
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT):
        while len(found) < count:
            message = json.loads(await websocket.recv())
            if message["kind"] == "event":
                found.append(message["event"])
            elif controls is not None:
                controls.append(message)
            else:
                raise AssertionError(f"unexpected frame {message}")
    return found


class SSEClient:
    """A Server-Sent Events client over a plain socket (HTTP/1.0: the body ends at close)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 status: int, headers: dict[str, str]) -> None:
        self.reader = reader
        self.writer = writer
        self.status = status
        self.headers = headers

    @classmethod
    async def open(cls, port: int, path: str, headers: dict[str, str] | None = None,
                   ) -> SSEClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [f"GET {path} HTTP/1.0", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(WAIT):
            status_line = await reader.readline()
            found: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                key, _, value = line.decode().partition(":")
                found[key.strip().lower()] = value.strip()
        return cls(reader, writer, int(status_line.split()[1]), found)

    async def body(self) -> Any:
        """The rest of the body as JSON (for error answers)."""
        async with asyncio.timeout(WAIT):
            return json.loads(await self.reader.read())

    async def message(self) -> dict[str, str]:
        """The next SSE message: its ``event`` (default ``message``), ``id`` and ``data``."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(WAIT):
            while True:
                line = (await self.reader.readline()).decode()
                if not line:
                    raise EOFError("the stream ended")
                line = line.rstrip("\n")
                if not line:
                    if "data" in fields:
                        fields.setdefault("event", "message")
                        return fields
                    continue
                if line.startswith(":"):
                    continue
                key, _, value = line.partition(":")
                fields[key] = value[1:] if value.startswith(" ") else value

    async def events(self, count: int,
                     controls: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The next ``count`` CloudEvents (checking each SSE id is the event's cursor: its
        ``firehoseseq`` when the replay is in the broker's log, else its id)."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            message = await self.message()
            data = json.loads(message["data"])
            if message["event"] == "message":
                assert message["id"] == str(data.get("firehoseseq", data["id"]))
                found.append(data)
            elif message["event"] == "hello":
                continue
            elif controls is not None:
                controls.append(data)
            else:
                raise AssertionError(f"unexpected SSE message {message}")
        return found

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def types_of(events: Iterable[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]
