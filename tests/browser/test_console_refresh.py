"""The console resumes across a full page refresh, and a page from another origin may use
the gateway only when --allow-origin names it (headless Chromium)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator

import pytest
from firehose_support import GatewayProcess, event, free_port
from selenium import webdriver
from test_console import publish, rows, status, until


def test_the_console_shows_what_was_sent_while_the_page_reloaded(
        browser: webdriver.Chrome, start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = start_gateway()
    page = gateway.url + "?filter=nova%2F%23"
    browser.get(page)
    until(browser, lambda: status(browser) == "live", "a live connection")
    publish(gateway, [event("compute.host1", f"before.{i}") for i in range(2)])
    until(browser, lambda: len(rows(browser)) == 2, "the first events")
    browser.get("about:blank")  # the page is gone: nothing of it runs
    publish(gateway, [event("compute.host1", f"away.{i}") for i in range(3)])
    browser.get(page)  # the same tab: its sessionStorage holds the last event id
    until(browser, lambda: len(rows(browser)) == 3, "the events sent while it was away")
    assert [r["type"] for r in rows(browser)] == ["away.2", "away.1", "away.0"]


@pytest.fixture
def other_origin() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A page server on another port (another origin): its origin, and its pages by path."""
    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0], b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", pages
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


PAGE = """<!doctype html><script>
window.result = new Promise((done) => {
  const socket = new WebSocket("ws://127.0.0.1:%d/ws");
  socket.onmessage = (m) => { done(JSON.parse(m.data).kind); socket.close(); };
  socket.onerror = () => done("refused");
});
</script>"""


@pytest.mark.parametrize("allowed", [False, True])
def test_a_page_from_another_origin_needs_allow_origin(
        browser: webdriver.Chrome, start_gateway: Callable[..., GatewayProcess],
        other_origin: tuple[str, dict[str, bytes]], allowed: bool) -> None:
    origin, pages = other_origin
    gateway = start_gateway(*(["--allow-origin", origin] if allowed else []))
    pages["/page.html"] = (PAGE % gateway.port).encode()
    browser.get(origin + "/page.html")
    kind = browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; window.result.then(done);")
    assert kind == ("hello" if allowed else "refused")
