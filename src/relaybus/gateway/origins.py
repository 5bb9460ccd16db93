"""Which web pages may use the gateway: an allowed-origins list, checked on /ws, and the
matching CORS answers on /events and /publish (preflight included).

Without a list only the gateway's own origin (the console) may: a page on any other site a
user visits cannot read a gateway on localhost through the user's browser. ``*`` allows
every origin. Clients that are not browsers send no ``Origin`` header and are not affected.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

CORS_PATHS = ("/events", "/publish")
ALLOW_HEADERS = "Authorization, Content-Type, Last-Event-ID"
CONSOLE_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; connect-src 'self' ws: wss:; "
                                "img-src 'self' data:; frame-ancestors 'none'; "
                                "base-uri 'none'; form-action 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class Origins:
    """The allowed origins (``scheme://host[:port]``; ``*``: any)."""

    def __init__(self, allowed: Sequence[str] = ()) -> None:
        for origin in allowed:
            if origin != "*" and ("://" not in origin or origin.endswith("/")):
                raise ValueError(f"an allowed origin is scheme://host[:port], got {origin!r}")
        self.allowed = frozenset(allowed)

    def allows(self, scope: Scope) -> bool:
        """Whether the request's Origin (if any) may use the gateway."""
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or "*" in self.allowed or origin in self.allowed:
            return True
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"),
                                                     scope.get("scheme", "http"))
        return origin == f"{scheme}://{headers.get('host', '')}"


class CORS:
    """ASGI middleware: CORS answers on /events and /publish, refusal of other origins."""

    def __init__(self, app: ASGIApp, origins: Origins) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in CORS_PATHS:
            await self.app(scope, receive, send)
            return
        origin = Headers(scope=scope).get("origin")
        if not self.origins.allows(scope):
            await JSONResponse({"error": "origin-not-allowed",
                                "message": f"origin {origin} may not use this gateway"},
                               status_code=403)(scope, receive, send)
            return
        cors = {} if origin is None else {"Access-Control-Allow-Origin": origin,
                                          "Vary": "Origin"}
        if scope["method"] == "OPTIONS":
            await Response(status_code=204, headers={
                **cors, "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": "600"})(scope, receive, send)
            return

        async def send_with_cors(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start" and cors:
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers += [(k.lower().encode(), v.encode()) for k, v in cors.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)  # type: ignore[arg-type]
