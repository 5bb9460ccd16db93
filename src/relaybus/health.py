"""Health probes over HTTP (``/livez``, ``/readyz``, ``/startupz``) for orchestrators.

Each probe is a check run **on the event loop**, asked from a small HTTP server on a
thread of its own (the standard library's, so probing needs no extra). The check answers
None when all is well, else the reason; the server answers ``200 {"status": "ok"}`` or
``503 {"status": "fail", "reason": ...}``. A loop that does not run the check within
``bound`` seconds fails the probe with that reason: the thread still answers, so a blocked
loop shows up as a failed probe that says why, not as a connection that hangs.

Nothing here knows about buses or servers; ``relaybus serve`` gives the checks meaning.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOG = logging.getLogger(__name__)

#: a probe's check: None when healthy, else why not (one line)
Check = Callable[[], str | None]
DEFAULT_BOUND = 2.0


class HealthServer:
    """Answers GET on each path of ``checks`` from a thread, running the check on ``loop``.

    Args:
        loop: the event loop the checks run on.
        checks: path (``/livez``...) to check.
        host, port: where to listen (port 0 picks a free one; see :attr:`port`).
        bound: seconds the loop has to run a check before the probe fails.

    Raises:
        OSError: the address cannot be listened on (port taken, address not local).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, checks: Mapping[str, Check], *,
                 host: str = "127.0.0.1", port: int = 0,
                 bound: float = DEFAULT_BOUND) -> None:
        self._loop = loop
        self._checks = dict(checks)
        self._bound = bound
        self._http = ThreadingHTTPServer((host, port), self._handler_class())
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on."""
        return int(self._http.server_address[1])

    def start(self) -> None:
        """Start answering (on a daemon thread named ``relaybus.health``)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._http.serve_forever,
                                            name="relaybus.health", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop answering and release the port; idempotent. Call it off the checks' loop
        or while that loop runs nothing the probes wait for (it waits for the thread)."""
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        """The status code and JSON body for ``path`` (called on the HTTP thread)."""
        check = self._checks.get(path.split("?", 1)[0])
        if check is None:
            return 404, {"status": "fail", "reason": f"no such probe; try "
                         f"{', '.join(sorted(self._checks))}"}
        result: concurrent.futures.Future[str | None] = concurrent.futures.Future()

        def run() -> None:
            if result.set_running_or_notify_cancel():
                try:
                    result.set_result(check())
                except Exception as exc:  # noqa: BLE001 - a failing check is a failed probe
                    result.set_exception(exc)

        try:
            self._loop.call_soon_threadsafe(run)
            reason = result.result(timeout=self._bound)
        except RuntimeError:  # the loop is closed
            reason = "the event loop has stopped"
        except concurrent.futures.TimeoutError:
            result.cancel()
            reason = f"the event loop did not answer within {self._bound:g} s"
        except Exception as exc:  # noqa: BLE001
            reason = f"the check failed: {type(exc).__name__}: {exc}"
        if reason is None:
            return 200, {"status": "ok"}
        return 503, {"status": "fail", "reason": reason}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "relaybus-health"

            def do_GET(self) -> None:
                status, body = server.answer(self.path)
                data = json.dumps(body).encode() + b"\n"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                LOG.debug("probe %s", format % args)

        return Handler
