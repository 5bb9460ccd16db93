"""The console resumes across a full page refresh, and a page from another origin may use
the gateway (WebSocket, EventSource, a preflighted POST /publish) only when --allow-origin
names it (headless Chromium)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from firehose_support import PUBLISH_TOKEN, GatewayProcess, event, free_port
from selenium import webdriver
from selenium.webdriver.common.by import By
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
const gateway = "127.0.0.1:GATEWAY_PORT";
async function tryAll() {
  const ws = await new Promise((done) => {
    const socket = new WebSocket(`ws://${gateway}/ws`);
    socket.onmessage = (m) => { done(JSON.parse(m.data).kind); socket.close(); };
    socket.onerror = () => done("refused");
  });
  const stream = new EventSource(`http://${gateway}/events?filter=nova%2Fcors%2F%23`);
  const sse = await new Promise((done) => {
    stream.addEventListener("hello", () => done("hello"));
    stream.onerror = () => { stream.close(); done("refused"); };
  });
  const seen = new Promise((done) => {
    stream.onmessage = (m) => done(JSON.parse(m.data).type);
  });
  let published;
  try {  // a preflighted request: Authorization and a JSON body
    const answer = await fetch(`http://${gateway}/publish`, {
      method: "POST", body: JSON.stringify({source: "cors", type: "cross.origin"}),
      headers: {"Authorization": "Bearer PUBLISH_TOKEN", "Content-Type": "application/json"}});
    published = answer.status;
  } catch (error) {
    published = "refused";
  }
  const event = sse === "hello" && published === 202 ? await seen : null;
  stream.close();
  return {ws, sse, published, event};
}
window.result = tryAll();
</script>"""


@pytest.mark.parametrize("allowed", [False, True])
def test_a_page_from_another_origin_needs_allow_origin(
        browser: webdriver.Chrome, start_gateway: Callable[..., GatewayProcess],
        other_origin: tuple[str, dict[str, bytes]], allowed: bool) -> None:
    origin, pages = other_origin
    gateway = start_gateway(*(["--allow-origin", origin] if allowed else []))
    pages["/page.html"] = (PAGE.replace("GATEWAY_PORT", str(gateway.port))
                           .replace("PUBLISH_TOKEN", PUBLISH_TOKEN).encode())
    browser.get(origin + "/page.html")
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; window.result.then(done);")
    if allowed:  # WebSocket, EventSource, and a preflighted POST /publish seen on the stream
        assert result == {"ws": "hello", "sse": "hello", "published": 202,
                          "event": "cross.origin"}
    else:
        assert result == {"ws": "refused", "sse": "refused", "published": "refused",
                          "event": None}


def test_the_console_says_when_its_token_narrows_what_it_sees(
        browser: webdriver.Chrome, start_gateway: Callable[..., GatewayProcess],
        tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[[token]]\nname = "compute"\ntoken = "scoped-token"\n'
                      'subscribe = ["nova/compute/#"]\n')
    gateway = start_gateway("--tokens-file", str(tokens))
    browser.get(gateway.url + "?filter=%23&token=scoped-token")
    until(browser, lambda: status(browser) == "live", "a live connection")
    assert browser.find_element(By.ID, "status").text == "live · within nova/compute/#"
    publish(gateway, [event("identity", "outside.scope"), event("compute", "inside.scope")])
    until(browser, lambda: len(rows(browser)) == 1, "the event inside the scope")
    assert [r["type"] for r in rows(browser)] == ["inside.scope"]
