"""Firehose benchmark: events/s through the gateway to 100 WebSocket clients, and the latency
from notify to a browser.

The gateway runs embedded in this process on ``memory://`` (as ``relaybus demo --console``
does), so the notifier is here too; every client runs in a process of its own, so its work
does not compete with the gateway's.

1. **Fan-out throughput.** 100 WebSocket clients (one worker process, ``websockets``)
   subscribe to ``#``; the notifier sends N events (~250-byte payload) as fast as it can; the
   clock stops when every client has every event. events/s = N / elapsed; deliveries/s =
   N x clients / elapsed. Each client's queue holds N events, so nothing is dropped (the
   figure says so if anything was).
2. **Latency, notify to browser.** Headless Chromium (Debian's, through chromium-driver)
   opens the gateway's page and a WebSocket to /ws; events are sent one every 5 ms, each
   carrying the wall-clock time of its ``notify`` call; the page subtracts it from
   ``performance.timeOrigin + performance.now()`` on arrival. Once on a page without
   scripts of its own, once with the web console open (rendering every event too); and the
   same for a Python WebSocket client in another process, for comparison.

Each workload runs ``--rounds`` times; the table shows medians (latency: the median over
rounds of each round's p50 / p99).

    python benchmarks/firehose_bench.py [--scale 1.0] [--rounds 3] [--clients 100]
                                        [--no-browser] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import relaybus
from relaybus.gateway import Gateway, GatewayOptions

PAD = "x" * 200
LATENCY_GAP = 0.005
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
                  "--disable-backgrounding-occluded-windows"]


# -- the client worker (a separate process) ---------------------------------------------

async def worker(url: str, clients: int, expected: int, mode: str) -> None:
    """Connect ``clients`` WebSockets, say "ready", then report on ``expected`` events."""
    from websockets.asyncio.client import connect

    sockets = [await connect(url, max_size=None) for _ in range(clients)]
    for websocket in sockets:
        assert json.loads(await websocket.recv())["kind"] == "hello"
    print("ready", flush=True)

    async def follow(websocket: Any) -> tuple[float, int, list[float]]:
        count, dropped, latencies = 0, 0, []
        async for frame in websocket:
            # Cheap: only the frames that need it are parsed (the gateway's frames all
            # start with their kind), so the clients cost the machine as little as they can.
            if not frame.startswith('{"kind":"event"'):
                if frame.startswith('{"kind":"dropped"'):
                    dropped += json.loads(frame)["count"]
                continue
            count += 1
            if mode == "latency":
                sent = json.loads(frame)["event"]["data"]["sent_ms"]
                latencies.append(time.time() * 1000 - sent)
            if count + dropped >= expected:
                return time.monotonic(), dropped, latencies
        raise RuntimeError("the gateway closed the connection")

    results = await asyncio.gather(*(follow(websocket) for websocket in sockets))
    print(json.dumps({"last": max(r[0] for r in results), "dropped": sum(r[1] for r in results),
                      "latencies": results[0][2]}), flush=True)
    for websocket in sockets:
        await websocket.close()


async def _start_worker(url: str, clients: int, expected: int,
                        mode: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--worker", url, str(clients), str(expected), mode,
        stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    if line.strip() != b"ready":
        raise RuntimeError(f"the client worker did not start: {line!r}")
    return process


async def _worker_result(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 120)
    await process.wait()
    return json.loads(line)


# -- the workloads ----------------------------------------------------------------------

async def fan_out(events: int, clients: int, round_: int) -> dict[str, float]:
    """Events/s through the gateway to ``clients`` WebSocket clients."""
    async with await relaybus.connect(f"memory://firehose-bench-{round_}",
                                      control_exchange="bench") as bus:
        gateway = Gateway(bus, GatewayOptions(http="127.0.0.1:0", client_queue=events,
                                              replay_events=events))
        async with gateway.running():
            url = f"ws://127.0.0.1:{gateway.port}/ws?topic=%23"
            process = await _start_worker(url, clients, events, "count")
            notifier = bus.notifier("bench.host1", topics=["notifications"])
            started = time.monotonic()
            for i in range(events):
                await notifier.info({}, "bench.fanout", {"i": i, "pad": PAD})
            result = await _worker_result(process)
    elapsed = result["last"] - started
    return {"events_s": events / elapsed, "deliveries_s": events * clients / elapsed,
            "dropped": result["dropped"]}


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return (statistics.median(ordered),
            ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))])


async def _paced(notifier: relaybus.Notifier, count: int) -> None:
    for i in range(count):
        await notifier.info({}, "bench.latency", {"i": i, "sent_ms": time.time() * 1000})
        await asyncio.sleep(LATENCY_GAP)  # one at a time: latency, not queueing


async def python_latency(count: int, round_: int) -> tuple[float, float]:
    """p50 and p99 milliseconds, notify to a Python WebSocket client in another process."""
    async with await relaybus.connect(f"memory://firehose-lat-{round_}",
                                      control_exchange="bench") as bus:
        gateway = Gateway(bus, GatewayOptions(http="127.0.0.1:0"))
        async with gateway.running():
            process = await _start_worker(f"ws://127.0.0.1:{gateway.port}/ws", 1, count,
                                          "latency")
            await _paced(bus.notifier("bench.host1", topics=["notifications"]), count)
            result = await _worker_result(process)
    return _percentiles(result["latencies"])


BROWSER_CLIENT = """
const [url, done] = [arguments[0], arguments[arguments.length - 1]];
window.latencies = [];
const socket = new WebSocket(url);
socket.onmessage = (m) => {
  const now = performance.timeOrigin + performance.now();
  const frame = JSON.parse(m.data);
  if (frame.kind === "hello") done(true);
  if (frame.kind === "event") window.latencies.push(now - frame.event.data.sent_ms);
};
socket.onerror = () => done(false);
"""


async def browser_latency(driver: Any, count: int, round_: int,
                          console: bool = False) -> tuple[float, float]:
    """p50 and p99 milliseconds, notify to a WebSocket in headless Chromium.

    With ``console``, the page is the web console, itself showing every event as it comes
    (its work on the page's one thread delays the measuring socket's messages too).
    """
    async with await relaybus.connect(f"memory://firehose-browser-{round_}",
                                      control_exchange="bench") as bus:
        gateway = Gateway(bus, GatewayOptions(http="127.0.0.1:0"))
        async with gateway.running():
            page = gateway.url if console else gateway.url + "healthz"  # the latter: no JS
            await asyncio.to_thread(driver.get, page)
            ok = await asyncio.to_thread(driver.execute_async_script, BROWSER_CLIENT,
                                         f"ws://127.0.0.1:{gateway.port}/ws?topic=%23")
            if not ok:
                raise RuntimeError("the browser could not open the WebSocket")
            await _paced(bus.notifier("bench.host1", topics=["notifications"]), count)
            latencies: list[float] = []
            deadline = time.monotonic() + 60
            while len(latencies) < count and time.monotonic() < deadline:
                latencies = await asyncio.to_thread(driver.execute_script,
                                                    "return window.latencies;")
            if len(latencies) < count:
                raise RuntimeError(f"the browser got {len(latencies)} of {count} events")
    return _percentiles(latencies)


def _chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        raise SystemExit("the browser workload needs Debian's chromium and chromium-driver "
                         "(or --no-browser)")
    options = Options()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='fh-bench-')}"]:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))


async def main(scale: float, rounds: int, clients: int, browser: bool) -> dict[str, float]:
    events = max(50, int(5000 * scale))
    samples = max(20, int(300 * scale))
    fan: list[dict[str, float]] = []
    python: list[tuple[float, float]] = []
    chromium: list[tuple[float, float]] = []
    console: list[tuple[float, float]] = []
    driver = _chromium() if browser else None
    try:
        for round_ in range(rounds):
            fan.append(await fan_out(events, clients, round_))
            python.append(await python_latency(samples, round_))
            if driver is not None:
                chromium.append(await browser_latency(driver, samples, round_))
                console.append(await browser_latency(driver, samples, round_, console=True))
    finally:
        if driver is not None:
            await asyncio.to_thread(driver.quit)
    figures = {
        f"{clients} ws clients events_s": statistics.median(f["events_s"] for f in fan),
        f"{clients} ws clients deliveries_s": statistics.median(f["deliveries_s"] for f in fan),
        f"{clients} ws clients dropped": sum(f["dropped"] for f in fan),
        "python ws latency p50_ms": statistics.median(p[0] for p in python),
        "python ws latency p99_ms": statistics.median(p[1] for p in python),
    }
    if chromium:
        figures["browser latency p50_ms"] = statistics.median(p[0] for p in chromium)
        figures["browser latency p99_ms"] = statistics.median(p[1] for p in chromium)
        figures["browser, console open, latency p50_ms"] = statistics.median(
            p[0] for p in console)
        figures["browser, console open, latency p99_ms"] = statistics.median(
            p[1] for p in console)
    return figures


def _table(figures: dict[str, float], scale: float, rounds: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"relaybus firehose (memory://, scale {scale}, "
                        f"median of {rounds} rounds)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, f"{value:,.0f}" if value >= 100 else f"{value:.2f}")
    Console().print(table)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, clients, expected, mode = sys.argv[2:6]
        asyncio.run(worker(url, int(clients), int(expected), mode))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    result = asyncio.run(main(args.scale, args.rounds, args.clients, not args.no_browser))
    if args.json:
        print(json.dumps(result))
    else:
        _table(result, args.scale, args.rounds)
