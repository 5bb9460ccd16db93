"""Open doors, closed politely: a connection limit, a deadline for a request's headers, and
an open-files limit raised to match.

Slowloris clients (a byte every few seconds, never finishing their headers) used to hold
sockets for ever, and at the process's open-files limit the accept loop failed in a tight
loop while /healthz hung. Now each connection must finish its first request's headers within
``header_timeout`` seconds, or it is closed; beyond ``max_connections`` a new connection gets
``503 Service Unavailable`` at once and is closed; and the process's RLIMIT_NOFILE is raised
to ``max_connections`` plus a margin (or the gateway refuses to start, saying why).

The limits live in a subclass of the HTTP server's own protocol (uvicorn's h11 one): it is
the only place that sees a connection before its headers are complete.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

LOG = logging.getLogger(__name__)

FD_MARGIN = 256  # files beyond the connections: the bus, MQTT, logs, the listening socket
_BUSY_BODY = b'{"error":"busy","message":"the gateway is at its connection limit; retry"}\n'
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b"connection: close\r\nretry-after: 5\r\ncontent-length: "
        + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


@dataclass
class ConnectionLimits:
    """The limits, and what they did (for /stats).

    Attributes:
        max_connections: concurrent HTTP and WebSocket connections.
        header_timeout: seconds a new connection has to send its first request's headers.
    """

    max_connections: int = 10_000
    header_timeout: float = 10.0
    refused: int = 0
    slow_closed: int = 0

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.header_timeout <= 0:
            raise ValueError("max_connections and header_timeout must be positive")

    def stats(self) -> dict[str, Any]:
        return {"max_connections": self.max_connections, "refused_busy": self.refused,
                "closed_slow_headers": self.slow_closed}

    def raise_open_files(self) -> int:
        """Raise RLIMIT_NOFILE's soft limit to what ``max_connections`` needs.

        Returns:
            The soft limit now in force.

        Raises:
            ValueError: the hard limit is too low (lower --max-connections, or raise it).
        """
        need = self.max_connections + FD_MARGIN
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft >= need:
            return soft
        if hard != resource.RLIM_INFINITY and hard < need:
            raise ValueError(f"--max-connections {self.max_connections} needs {need} open "
                             f"files, but this process may have at most {hard} (ulimit -Hn): "
                             f"lower --max-connections to {max(1, hard - FD_MARGIN)} or "
                             "raise the hard limit")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        LOG.info("raised the open-files limit from %d to %d", soft, need)
        return need

    def protocol(self) -> type[H11Protocol]:
        """The HTTP protocol class enforcing these limits (for ``uvicorn.Config(http=...)``)."""
        limits = self

        class LimitedH11Protocol(H11Protocol):
            _header_timer: asyncio.TimerHandle | None = None
            _busy = False

            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                # Over the limit: answer 503 once the request arrives (closing now, with
                # the request unread, would reset the connection and lose the answer).
                self._busy = len(self.server_state.connections) > limits.max_connections
                self._header_timer = self.loop.call_later(limits.header_timeout,
                                                          self._headers_too_slow)

            def data_received(self, data: bytes) -> None:
                if not self._busy:
                    super().data_received(data)
                elif not self.transport.is_closing():
                    limits.refused += 1
                    self.transport.write(BUSY)
                    self.transport.close()

            def handle_events(self) -> None:
                super().handle_events()
                if self.cycle is not None:  # a request's headers are complete
                    self._stop_header_timer()

            def handle_websocket_upgrade(self, event: Any) -> None:
                self._stop_header_timer()
                super().handle_websocket_upgrade(event)

            def connection_lost(self, exc: Exception | None) -> None:
                self._stop_header_timer()
                super().connection_lost(exc)

            def _stop_header_timer(self) -> None:
                if self._header_timer is not None:
                    self._header_timer.cancel()
                    self._header_timer = None

            def _headers_too_slow(self) -> None:
                self._header_timer = None
                if not self.transport.is_closing():
                    limits.slow_closed += 1
                    self.transport.close()

        return LimitedH11Protocol
