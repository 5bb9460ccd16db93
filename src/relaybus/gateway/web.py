"""The HTTP side: the console page, /ws (WebSocket), /events (SSE), /publish, /stats and the
probes (/livez, /startupz, /readyz, /healthz).

Every client names the topics it wants with MQTT-style filters (``?topic=nova/%23``,
repeatable), may resume after the last event id it saw (``?since=`` on /ws;
``Last-Event-ID`` or ``?since=`` on /events), and gets its events from a bounded queue of its
own (see :mod:`relaybus.gateway.hub`). Bad input gets a clear error and the connection is
closed: HTTP 400/401/403/413 with a JSON body, or on a WebSocket an ``error`` frame followed
by a close code (4400 bad request, 4401 bad token, 4403 not allowed: to publish, or outside
the token's scope; 1009 frame too big). Refusals are counted by reason (/stats ``auth``).
docs/protocol/cloudevents.md describes every frame.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from relaybus.gateway.auth import BadToken, Grant, OutOfScope, Tokens
from relaybus.gateway.events import Event, encode
from relaybus.gateway.hub import Hub, Item, Subscriber
from relaybus.gateway.origins import CONSOLE_HEADERS, CORS, Origins
from relaybus.gateway.publish import BadEvent, BusPublisher, Outgoing, parse_events
from relaybus.gateway.tasks import first_completed
from relaybus.gateway.topics import BadFilter, FilterSet

LOG = logging.getLogger(__name__)

STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/console.js": ("console.js", "text/javascript; charset=utf-8"),
          "/console.css": ("console.css", "text/css; charset=utf-8")}

CLOSE_BAD_REQUEST = 4400
CLOSE_BAD_TOKEN = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_GOING_AWAY = 1001


@dataclass
class WebContext:
    """What the endpoints need from the gateway.

    Attributes:
        hub: the event hub.
        tokens: who may subscribe and publish.
        publisher: sends published events to the bus (None: publishing disabled).
        stats: returns the /stats document.
        health: returns (healthy, details) for /healthz (details in full with True).
        ready: returns (ready, details) for /readyz.
        instance: this gateway run's id (changes on restart).
        max_body: the largest POST /publish body or WebSocket frame, in bytes.
        keepalive: seconds between SSE keep-alive comments.
        write_timeout: seconds one write to a client may stall before the client is let go
            (its queue freed, its connection ended; it resumes with ``since`` and may get
            a gap marker).
        origins: the web pages that may use /ws, /events and /publish.
    """

    hub: Hub
    tokens: Tokens
    publisher: BusPublisher | None
    stats: Callable[[], dict[str, Any]]
    health: Callable[[bool], tuple[bool, dict[str, Any]]]
    ready: Callable[[], tuple[bool, dict[str, Any]]]
    instance: str
    max_body: int = 1024 * 1024
    keepalive: float = 15.0
    write_timeout: float = 10.0
    origins: Origins = field(default_factory=Origins)


class Query:
    """A request's query parameters, percent-decoded only.

    Unlike form decoding, a ``+`` stays a ``+``, so ``?topic=nova/+/compute/%23`` means
    what an MQTT user means by it (``%2B`` works too). For programs that build their URLs
    with ``URLSearchParams`` (which writes a space as ``+``), :meth:`filters` also reads
    ``filter=`` with form decoding: there ``+`` is a space and the wildcard is ``%2B``.
    """

    def __init__(self, scope: Scope) -> None:
        self._values: dict[str, list[str]] = {}
        self._form: list[str] = []
        raw = scope.get("query_string", b"").decode("latin-1")
        for pair in filter(None, raw.split("&")):
            key, _, value = pair.partition("=")
            self._values.setdefault(urllib.parse.unquote(key), []).append(
                urllib.parse.unquote(value, errors="replace"))
            if urllib.parse.unquote_plus(key) == "filter":
                self._form.append(urllib.parse.unquote_plus(value, errors="replace"))

    def get(self, key: str, default: str | None = None) -> str | None:
        values = self._values.get(key)
        return values[-1] if values else default

    def getlist(self, key: str) -> list[str]:
        return list(self._values.get(key, ()))

    def filters(self) -> list[str]:
        """The topic filters: every ``topic=`` (percent-decoded) and ``filter=`` (form-
        decoded, as ``URLSearchParams`` writes it)."""
        return self.getlist("topic") + self._form


class Stalled(Exception):
    """A write to a client stalled past the write timeout: the client is let go."""


async def _within(ctx: WebContext, subscriber: Subscriber, write: Awaitable[None]) -> None:
    """Await one write to ``subscriber``; let the client go if it stalls past the timeout.

    Raises:
        Stalled: the write did not finish in ``ctx.write_timeout`` seconds.
    """
    try:
        async with asyncio.timeout(ctx.write_timeout):
            await write
    except TimeoutError:
        ctx.hub.counters.stalled += 1
        LOG.warning("%s stopped reading (a write stalled for %.0f s): letting it go; it may "
                    "resume with since=", subscriber.name, ctx.write_timeout)
        ctx.hub.unsubscribe(subscriber)  # frees its queue now
        raise Stalled(subscriber.name) from None


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _client_name(kind: str, scope: Scope) -> str:
    client = scope.get("client") or ("?", 0)
    return f"{kind}[{client[0]}:{client[1]}]"


def _hello(ctx: WebContext, subscriber: Subscriber, grant: Grant,
           since: str | None) -> dict[str, Any]:
    return {"kind": "hello", "gateway": "relaybus firehose", "instance": ctx.instance,
            "filters": subscriber.filters.texts, "since": since,
            "access": grant.access.name.lower(),
            "scope": grant.subscribe.texts if grant.scoped and grant.subscribe else None,
            "max_queue": subscriber.max_queue}


def _authorise(ctx: WebContext, headers: Any, scope: Scope) -> Grant:
    """The request's grant (counted when refused).

    Raises:
        BadToken: see :meth:`Tokens.grant`.
    """
    try:
        return ctx.tokens.grant(Tokens.presented(headers, Query(scope)))
    except BadToken:
        ctx.tokens.count("bad-token")
        raise


def _subscription(ctx: WebContext, grant: Grant, scope: Scope) -> FilterSet:
    """The filters a subscription gets, within the grant's scope (refusals counted).

    Raises:
        BadFilter: a malformed filter.
        BadToken: the grant may not subscribe.
        OutOfScope: a filter shares no topic with the grant's scope.
    """
    try:
        return grant.subscription(FilterSet.parse(Query(scope).filters()))
    except OutOfScope as exc:
        ctx.tokens.count(exc.reason)
        raise
    except BadToken:
        ctx.tokens.count("forbidden")
        raise


def _out_of_scope(ctx: WebContext, grant: Grant, publisher: BusPublisher,
                  events: list[Outgoing]) -> str | None:
    """Why ``grant`` may not publish ``events`` (None: it may); counted."""
    try:
        grant.check_publish([publisher.topic_of(event) for event in events])
    except OutOfScope as exc:
        ctx.tokens.count(exc.reason)
        return str(exc)
    return None


class _Static:
    """Serves the console's files from the package (read once)."""

    def __init__(self) -> None:
        base = importlib.resources.files("relaybus.gateway") / "static"
        self._files = {path: ((base / name).read_bytes(), media)
                       for path, (name, media) in STATIC.items()}

    async def serve(self, request: Request) -> Response:
        body, media = self._files[request.url.path]
        return Response(body, media_type=media,
                        headers={"Cache-Control": "no-cache", **CONSOLE_HEADERS})


class _ServerSentEvents:
    """GET /events: the stream as Server-Sent Events (a raw ASGI app, to own disconnects)."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            grant = _authorise(self.ctx, request.headers, scope)
        except BadToken as exc:
            await _error(401, "bad-token", str(exc))(scope, receive, send)
            return
        try:
            filters = _subscription(self.ctx, grant, scope)
        except BadFilter as exc:
            await _error(400, "bad-filter", str(exc))(scope, receive, send)
            return
        except OutOfScope as exc:
            await _error(403, exc.reason, str(exc))(scope, receive, send)
            return
        except BadToken as exc:
            await _error(403, "forbidden", str(exc))(scope, receive, send)
            return
        since = request.headers.get("last-event-id") or Query(scope).get("since")
        subscriber = self.ctx.hub.subscribe(_client_name("sse", scope), filters, since)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]})
            hello = encode(_hello(self.ctx, subscriber, grant, since))
            await send({"type": "http.response.body", "more_body": True,
                        "body": b"retry: 1000\nevent: hello\ndata: " + hello + b"\n\n"})
            ended = await first_completed(
                **{f"relaybus.gateway.{subscriber.name}.writer": self._write(subscriber, send),
                   f"relaybus.gateway.{subscriber.name}.watch": self._watch(receive)})
            if ended.endswith(".writer"):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (OSError, Stalled):
            pass  # the client went away mid-write, or stopped reading
        finally:
            self.ctx.hub.unsubscribe(subscriber)

    async def _write(self, subscriber: Subscriber, send: Send) -> None:
        while True:
            try:
                async with asyncio.timeout(self.ctx.keepalive):
                    batch = await subscriber.take()
            except TimeoutError:
                await _within(self.ctx, subscriber, send(
                    {"type": "http.response.body", "body": b": keepalive\n\n",
                     "more_body": True}))
                continue
            if not batch:
                return
            await _within(self.ctx, subscriber, send(
                {"type": "http.response.body", "body": b"".join(map(_sse, batch)),
                 "more_body": True}))

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass


def _sse(item: Item) -> bytes:
    if isinstance(item, Event):
        return item.sse_frame
    control = item.as_dict()
    return b"event: " + control["kind"].encode() + b"\ndata: " + encode(control) + b"\n\n"


BATCH_ON = ("1", "true", "yes")


def _ws(item: Item) -> str:
    return item.ws_frame if isinstance(item, Event) else encode(item.as_dict()).decode()


def ws_batched(batch: list[Item]) -> list[str]:
    """The frames of a batch for a client that asked for ``batch=1``: each run of events
    waiting together goes in one ``{"kind":"events","count":N,"events":[...]}`` frame (a
    lone event in the usual ``event`` frame), control frames as usual, in order."""
    frames: list[str] = []
    run: list[Event] = []
    for item in [*batch, None]:
        if isinstance(item, Event):
            run.append(item)
            continue
        if len(run) == 1:
            frames.append(run[0].ws_frame)
        elif run:
            frames.append(f'{{"kind":"events","count":{len(run)},"events":['
                          + ",".join(event.json.decode() for event in run) + "]}")
        run = []
        if item is not None:
            frames.append(_ws(item))
    return frames


class _FrameCache:
    """The frames of a batch as bytes on the wire, kept for the next clients of the same
    burst (each gets the same events): built once, not once per client."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._frames: dict[tuple[bool, tuple[str, ...]], list[bytes]] = {}
        # The last batch seen (a flush hands every client the same list) and its frames.
        self._last: dict[bool, tuple[list[Item], list[bytes]]] = {}

    def frames(self, batch: list[Item], batched: bool) -> list[bytes]:
        last = self._last.get(batched)
        if last is not None and last[0] is batch:
            return last[1]
        if not all(isinstance(item, Event) for item in batch):  # control frames: rare
            texts = ws_batched(batch) if batched else map(_ws, batch)
            return [text_frame(text.encode()) for text in texts]
        # An event's cursor names it (its log offset, else its id): events read back from
        # the log for one client are other objects than the live ones, with no hub seq.
        key = (batched, tuple(item.cursor for item in batch))  # type: ignore[union-attr]
        frames = self._frames.get(key)
        if frames is None:
            if len(self._frames) >= self._size:
                del self._frames[next(iter(self._frames))]
            texts = ws_batched(batch) if batched else map(_ws, batch)
            frames = self._frames[key] = [text_frame(text.encode()) for text in texts]
        self._last[batched] = (batch, frames)
        return frames


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked WebSocket text frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big") + payload
    return b"\x81\x7f" + size.to_bytes(8, "big") + payload


def _server_protocol(websocket: WebSocket) -> Any:
    """uvicorn's sans-I/O WebSocket protocol behind ``websocket``, or None.

    Events are the hot path: for each client, uvicorn would encode the text, build the
    frame in Python and write it. With its protocol at hand, the writer writes the frame
    (built once for every client, :class:`_FrameCache`) to the transport itself, minding
    the same flow control (``writable``) and disconnection. Found through the ``send``
    callable Starlette wraps around uvicorn's; another server gets the ASGI path.
    """
    pending: list[Any] = [getattr(websocket, "_send", None)]
    for _ in range(8):
        if not pending:
            return None
        send = pending.pop()
        owner = getattr(send, "__self__", None)
        if all(hasattr(owner, name) for name in ("transport", "writable", "disconnected",
                                                 "conn")):
            return owner
        pending += [cell.cell_contents for cell in getattr(send, "__closure__", None) or ()
                    if callable(cell.cell_contents)]
    return None


class _WebSocketStream:
    """/ws: the stream over a WebSocket; with the publish token, publishing too."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self._frames = _FrameCache()

    async def serve(self, websocket: WebSocket) -> None:
        if not self.ctx.origins.allows(websocket.scope):
            await websocket.close(CLOSE_FORBIDDEN)  # before accepting: HTTP 403
            return
        await websocket.accept()
        try:
            grant = _authorise(self.ctx, websocket.headers, websocket.scope)
        except BadToken as exc:
            await self._fail(websocket, CLOSE_BAD_TOKEN, "bad-token", str(exc))
            return
        try:
            filters = _subscription(self.ctx, grant, websocket.scope)
        except BadFilter as exc:
            await self._fail(websocket, CLOSE_BAD_REQUEST, "bad-filter", str(exc))
            return
        except OutOfScope as exc:
            await self._fail(websocket, CLOSE_FORBIDDEN, exc.reason, str(exc))
            return
        except BadToken as exc:
            await self._fail(websocket, CLOSE_FORBIDDEN, "forbidden", str(exc))
            return
        since = Query(websocket.scope).get("since")
        batched = Query(websocket.scope).get("batch") in BATCH_ON
        subscriber = self.ctx.hub.subscribe(_client_name("ws", websocket.scope), filters, since)
        try:
            await websocket.send_text(encode(_hello(self.ctx, subscriber, grant,
                                                    since)).decode())
            ended = await first_completed(
                **{f"relaybus.gateway.{subscriber.name}.writer": self._write(
                    subscriber, websocket, batched),
                   f"relaybus.gateway.{subscriber.name}.reader": self._read(websocket,
                                                                             grant)})
            if ended.endswith(".writer"):
                await websocket.close(CLOSE_GOING_AWAY, "the gateway is shutting down")
        except (WebSocketDisconnect, OSError, Stalled):
            pass
        finally:
            self.ctx.hub.unsubscribe(subscriber)

    @staticmethod
    async def _fail(websocket: WebSocket, code: int, error: str, message: str) -> None:
        """Send an error frame, then close with ``code``."""
        try:
            await websocket.send_text(encode({"kind": "error", "error": error,
                                              "message": message}).decode())
            await websocket.close(code, message[:120])
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass

    async def _write(self, subscriber: Subscriber, websocket: WebSocket,
                     batched: bool = False) -> None:
        server = _server_protocol(websocket)
        if server is not None:
            frames = self._frames

            def direct(events: list[Item]) -> bool:
                if server.disconnected or not server.writable.is_set():
                    return False  # the writer deals with it, under the write timeout
                for frame in frames.frames(events, batched):
                    server.transport.write(frame)
                return True

            subscriber.direct = direct
        while batch := await subscriber.take():
            if server is None:
                for text in (ws_batched(batch) if batched else map(_ws, batch)):
                    await _within(self.ctx, subscriber, websocket.send_text(text))
                continue
            for frame in self._frames.frames(batch, batched):
                if server.disconnected:
                    raise OSError("the client went away")
                if not server.writable.is_set():  # flow control: its buffer is full
                    await _within(self.ctx, subscriber, server.writable.wait())
                server.transport.write(frame)

    async def _read(self, websocket: WebSocket, grant: Grant) -> None:
        """Handle what the client sends; return when it leaves or after closing on an error."""
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self._fail(websocket, CLOSE_BAD_REQUEST, "bad-frame",
                                 "binary frames are not accepted; send JSON text")
                return
            try:
                request = msgspec.json.decode(text)
            except msgspec.DecodeError:
                await self._fail(websocket, CLOSE_BAD_REQUEST, "bad-json",
                                 "a frame must be a JSON object")
                return
            if not isinstance(request, dict) or request.get("action") != "publish":
                await self._fail(websocket, CLOSE_BAD_REQUEST, "bad-request",
                                 'the only action is {"action": "publish", "event": {...}}')
                return
            if grant.publish is None or self.ctx.publisher is None:
                self.ctx.tokens.count("forbidden")
                await self._fail(websocket, CLOSE_FORBIDDEN, "forbidden",
                                 "publishing needs the gateway's publish token")
                return
            try:
                events = parse_events(request.get("events", request.get("event")))
            except BadEvent as exc:
                await self._fail(websocket, CLOSE_BAD_REQUEST, "bad-event", str(exc))
                return
            refusal = _out_of_scope(self.ctx, grant, self.ctx.publisher, events)
            if refusal is not None:
                await self._fail(websocket, CLOSE_FORBIDDEN, "publish-out-of-scope", refusal)
                return
            await self.ctx.publisher.publish(events)
            await websocket.send_text(encode({"kind": "published", "count": len(events),
                                              "ref": request.get("ref")}).decode())


class _Probes:
    """/livez and /startupz, beside /readyz and /healthz (Kubernetes' three probes).

    - /livez: the event loop answers (this handler runs on it), whatever the brokers do, so
      a broker outage never gets the gateway restarted. 200 always; ``loop_lag_ms`` is how
      long one turn of the loop took to come back to it.
    - /startupz: the gateway has started: it listens to the bus and, with ``--mqtt``, its
      bridge has connected once. 503 ``"starting"`` with ``waiting_for`` until then; once
      started it stays started (later outages are /readyz's to report).
    """

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self._started = False

    async def livez(self, request: Request) -> Response:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.sleep(0)
        return JSONResponse({"status": "alive", "instance": self.ctx.instance,
                             "loop_lag_ms": round((loop.time() - began) * 1000, 3)})

    async def startupz(self, request: Request) -> Response:
        _, health = self.ctx.health(False)
        waiting = [] if health["listening"] else ["the bus listeners"]
        if health["mqtt"] is False:
            waiting.append("the first connection to the MQTT broker")
        self._started = self._started or not waiting
        if self._started:
            return JSONResponse({"status": "started", "instance": self.ctx.instance})
        return JSONResponse({"status": "starting", "instance": self.ctx.instance,
                             "waiting_for": waiting, "problems": health["problems"]},
                            status_code=503)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(ctx: WebContext) -> Starlette:
    """The gateway's ASGI application."""
    static = _Static()

    async def publish(request: Request) -> Response:
        try:
            grant = _authorise(ctx, request.headers, request.scope)
        except BadToken as exc:
            return _error(401, "bad-token", str(exc))
        if grant.publish is None or ctx.publisher is None:
            ctx.tokens.count("forbidden")
            return _error(403, "forbidden", "publishing needs the gateway's publish token")
        body = await _read_body(request, ctx.max_body)
        if body is None:
            return _error(413, "too-large", f"the body is larger than {ctx.max_body} bytes")
        try:
            events = parse_events(msgspec.json.decode(body))
        except msgspec.DecodeError:
            return _error(400, "bad-json", "the body must be JSON: an event or a list of them")
        except BadEvent as exc:
            return _error(400, "bad-event", str(exc))
        refusal = _out_of_scope(ctx, grant, ctx.publisher, events)
        if refusal is not None:
            return _error(403, "publish-out-of-scope", refusal)
        await ctx.publisher.publish(events)
        return JSONResponse({"published": len(events)}, status_code=202)

    async def stats(request: Request) -> Response:
        try:
            _authorise(ctx, request.headers, request.scope)
        except BadToken as exc:
            return _error(401, "bad-token", str(exc))
        return JSONResponse({**ctx.stats(), "auth": ctx.tokens.stats()})

    async def healthz(request: Request) -> Response:
        try:
            token = Tokens.presented(request.headers, Query(request.scope))
            detailed = token is not None and ctx.tokens.grant(token) is not None
        except BadToken:
            detailed = False
        healthy, details = ctx.health(detailed)
        return JSONResponse(details, status_code=200 if healthy else 503)

    async def readyz(request: Request) -> Response:
        ready, details = ctx.ready()
        return JSONResponse(details, status_code=200 if ready else 503)

    probes = _Probes(ctx)

    routes: list[BaseRoute] = [Route(path, static.serve, methods=["GET"]) for path in STATIC]
    routes += [
        Route("/events", _ServerSentEvents(ctx), methods=["GET", "OPTIONS"]),
        WebSocketRoute("/ws", _WebSocketStream(ctx).serve),
        Route("/publish", publish, methods=["POST", "OPTIONS"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/livez", probes.livez, methods=["GET"]),
        Route("/startupz", probes.startupz, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(CORS, origins=ctx.origins)
    return app
