"""Firehose benchmark: idle subscribers one gateway holds, events/s through the gateway to
many WebSocket clients, and the latency from notify to a browser, alone and under load.

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

3. **Idle subscribers** (``--idle N``, default 10,000). Half WebSocket, half SSE clients
   (raw sockets: the handshake, the hello, then nothing), held by worker processes; the
   gateway process's resident memory is read (``/proc/self/status``, after a garbage
   collection) before and once all are connected, and /stats must count them all: KB per
   idle subscriber = the difference / N.
4. **Loaded fan-out** (``--loaded-clients N``, default 1,000). N WebSocket clients in
   ``--workers`` processes, each taking batched frames (``?batch=1``: several events per
   frame when a client lags; see docs/protocol/cloudevents.md) and counting events on raw
   sockets (epoll; only frame headers and a batch's count are read, and the total must be
   every event to every client); the notifier sends as fast as it can: deliveries/s =
   events x N / elapsed. Then, to N other subscribers (batching WebSocket clients that read
   and discard every 50 ms, as clients on other machines would cost this one little),
   events are sent at ``--loaded-rate`` per second (default 250: 250,000 deliveries/s at
   1,000 clients) while a browser (or, with --no-browser, a Python client) measures
   notify-to-arrival latency. Everything shares the machine, so each round also reports
   the load average (start and end), the CPU the gateway's process and the clients'
   processes used per delivery, and the garbage collector's longest pause and full
   collections during the latency phase.

Each workload runs ``--rounds`` times; the table shows medians (latency: the median over
rounds of each round's p50 / p99), with the load average at the start (the machine is
shared: read the figures with it).

    python benchmarks/firehose_bench.py [--scale 1.0] [--rounds 3] [--clients 100]
                                        [--idle 10000] [--loaded-clients 1000]
                                        [--workers 2] [--no-browser] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import resource
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

def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


BATCH_PREFIX = '{"kind":"events","count":'


async def worker(url: str, clients: int, expected: int, mode: str) -> None:
    """Connect ``clients`` WebSockets, say "ready", then report on ``expected`` events."""
    from websockets.asyncio.client import connect

    _raise_open_files()
    sockets = [await connect(url, max_size=None) for _ in range(clients)]
    for websocket in sockets:
        assert json.loads(await websocket.recv())["kind"] == "hello"
    print("ready", flush=True)

    async def follow(websocket: Any) -> tuple[float, int, list[float]]:
        count, dropped, latencies = 0, 0, []
        async for frame in websocket:
            # Cheap: only the frames that need it are parsed (the gateway's frames all
            # start with their kind, a batch with its count), so the clients cost the
            # machine as little as they can.
            if frame.startswith(BATCH_PREFIX):
                count += int(frame[len(BATCH_PREFIX):frame.index(",", len(BATCH_PREFIX))])
            elif frame.startswith('{"kind":"event"'):
                count += 1
                if mode == "latency":
                    sent = json.loads(frame)["event"]["data"]["sent_ms"]
                    latencies.append(time.time() * 1000 - sent)
            elif frame.startswith('{"kind":"dropped"'):
                dropped += json.loads(frame)["count"]
            if count + dropped >= expected:
                return time.monotonic(), dropped, latencies
        raise RuntimeError("the gateway closed the connection")

    results = await asyncio.gather(*(follow(websocket) for websocket in sockets))
    print(json.dumps({"last": max(r[0] for r in results), "dropped": sum(r[1] for r in results),
                      "latencies": results[0][2], "cpu": time.process_time()}), flush=True)
    for websocket in sockets:
        await websocket.close()


async def idle_worker(port: int, kind: str, count: int) -> None:
    """Hold ``count`` idle subscribers of ``kind`` (ws or sse) until stdin closes.

    Raw sockets, so the worker costs little: the handshake, the hello's first bytes, then
    nothing (the kernel keeps what else comes, the SSE keep-alive comments).
    """
    _raise_open_files()
    held: list[asyncio.StreamWriter] = []
    handshakes = asyncio.Semaphore(100)

    async def one() -> None:
        async with handshakes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if kind == "ws":
                key = base64.b64encode(os.urandom(16)).decode()
                request = (f"GET /ws?topic=%23 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                expected = b" 101 "
            else:
                request = (f"GET /events?topic=%23 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Accept: text/event-stream\r\n\r\n")
                expected = b" 200 "
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if expected not in head.split(b"\r\n", 1)[0]:
                raise RuntimeError(f"{kind}: {head.splitlines()[0]!r}")
            await reader.read(1)  # the hello is on its way: subscribed
            held.append(writer)

    await asyncio.gather(*(one() for _ in range(count)))
    print("ready", len(held), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    for writer in held:
        writer.close()


def drain_worker(port: int, count: int) -> None:
    """Hold ``count`` batching WebSocket subscribers that read and discard, until stdin
    closes: the load of clients on other machines, at little cost to this one (every 50 ms
    one pass over the sockets with data, no frame parsing)."""
    import select
    import socket

    _raise_open_files()
    poller = select.epoll()
    sockets = {}
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /ws?topic=%23&batch=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                      ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"ws: {head.splitlines()[0]!r}")
        sock.setblocking(False)
        sockets[sock.fileno()] = sock
        poller.register(sock, select.EPOLLIN)
    poller.register(sys.stdin, select.EPOLLIN)
    print("ready", flush=True)
    while True:
        for fd, _ in poller.poll(1.0):
            if fd not in sockets:  # stdin closed: done
                print(json.dumps({"cpu": time.process_time()}), flush=True)
                return
            with contextlib.suppress(BlockingIOError):
                while sockets[fd].recv(1 << 20):
                    pass
        time.sleep(0.05)


def _ws_handshake(port: int, path: str) -> Any:
    """A raw socket with a WebSocket opened on ``path`` (the response head read)."""
    import socket

    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: what follows the head is the first frame
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"ws: {head.splitlines()[0]!r}")
    return sock


def count_worker(port: int, clients: int, expected: int) -> None:
    """Like :func:`worker` in "count" mode, on raw sockets read with epoll: each frame's
    header is parsed and a batch's count read from its first bytes, nothing else, so the
    clients take as little of the machine as a client can (their CPU is reported)."""
    import select

    _raise_open_files()
    poller = select.epoll()
    sockets, buffers, counts, dropped = {}, {}, {}, 0
    for _ in range(clients):
        sock = _ws_handshake(port, "/ws?topic=%23&batch=1")
        sock.setblocking(False)
        sockets[sock.fileno()] = sock
        buffers[sock.fileno()], counts[sock.fileno()] = bytearray(), -1  # -1: the hello
        poller.register(sock, select.EPOLLIN)
    print("ready", flush=True)
    batch, single = BATCH_PREFIX.encode(), b'{"kind":"event"'
    done, last = 0, 0.0
    while done < clients:
        for fd, _ in poller.poll(60):
            buffer = buffers[fd]
            with contextlib.suppress(BlockingIOError):
                while chunk := sockets[fd].recv(1 << 20):
                    buffer += chunk
            while len(buffer) >= 2:
                size, start = buffer[1] & 0x7F, 2
                if size == 126:
                    size, start = int.from_bytes(buffer[2:4], "big"), 4
                elif size == 127:
                    size, start = int.from_bytes(buffer[2:10], "big"), 10
                if len(buffer) < start + size:
                    break
                head = bytes(buffer[start:start + 64])
                if head.startswith(batch):
                    counts[fd] += int(head[len(batch):head.index(b",", len(batch))])
                elif head.startswith(single):
                    counts[fd] += 1
                elif head.startswith(b'{"kind":"dropped"'):
                    count = json.loads(bytes(buffer[start:start + size]))["count"]
                    dropped, counts[fd] = dropped + count, counts[fd] + count
                elif head.startswith(b'{"kind":"hello"'):
                    counts[fd] += 1
                del buffer[:start + size]
            if counts[fd] >= expected:
                poller.unregister(fd)
                done, last = done + 1, time.monotonic()
    print(json.dumps({"last": last, "dropped": dropped, "latencies": [],
                      "counted": sum(counts.values()), "cpu": time.process_time()}),
          flush=True)
    for sock in sockets.values():
        sock.close()


async def _start_counting(port: int, clients: int, expected: int,
                          workers: int) -> list[asyncio.subprocess.Process]:
    processes = []
    for share in [clients // workers + (1 if i < clients % workers else 0)
                  for i in range(workers)]:
        processes.append(await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--count-worker", str(port), str(share), str(expected),
            stdout=asyncio.subprocess.PIPE))
    for process in processes:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 300)
        if line.strip() != b"ready":
            raise RuntimeError(f"a counting worker did not start: {line!r}")
    return processes


async def _start_worker(url: str, clients: int, expected: int,
                        mode: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--worker", url, str(clients), str(expected), mode,
        stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 120)
    if line.strip() != b"ready":
        raise RuntimeError(f"the client worker did not start: {line!r}")
    return process


async def _start_workers(url: str, clients: int, expected: int, mode: str,
                         workers: int) -> list[asyncio.subprocess.Process]:
    shares = [clients // workers + (1 if i < clients % workers else 0)
              for i in range(workers)]
    return list(await asyncio.gather(*(_start_worker(url, share, expected, mode)
                                       for share in shares if share)))


async def _worker_result(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 900)
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


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def idle(subscribers: int, round_: int) -> dict[str, float]:
    """KB of the gateway process per idle subscriber (half WebSocket, half SSE)."""
    async with await relaybus.connect(f"memory://firehose-idle-{round_}",
                                      control_exchange="bench") as bus:
        gateway = Gateway(bus, GatewayOptions(http="127.0.0.1:0",
                                              max_connections=subscribers + 100))
        async with gateway.running():
            # Warm up: one of each, so what is loaded once is not counted per subscriber.
            warm = await _hold(gateway.port, {"ws": 1, "sse": 1})
            await _release(warm)
            gc.collect()
            before = _rss_kb()
            started = time.monotonic()
            half = subscribers // 2
            workers = await _hold(gateway.port, {"ws": half, "sse": subscribers - half})
            connect_s = time.monotonic() - started
            gc.collect()
            after = _rss_kb()
            clients = gateway.stats()["clients"]
            await _release(workers)
    if clients != subscribers:
        raise RuntimeError(f"the gateway counts {clients} clients, not {subscribers}")
    return {"kb_per_subscriber": (after - before) / subscribers,
            "rss_mb": after / 1024, "connect_s": connect_s}


async def _hold(port: int, counts: dict[str, int]) -> list[asyncio.subprocess.Process]:
    """Idle subscribers in worker processes (at most 2,500 each), once all are connected."""
    processes = []
    for kind, count in counts.items():
        for share in [2500] * (count // 2500) + ([count % 2500] if count % 2500 else []):
            processes.append(await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--idle-worker", str(port), kind, str(share),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE))
    for process in processes:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 300)
        if not line.startswith(b"ready"):
            raise RuntimeError(f"an idle worker did not start: {line!r}")
    return processes


async def _hold_draining(port: int, clients: int,
                         workers: int) -> list[asyncio.subprocess.Process]:
    processes = []
    for share in [clients // workers + (1 if i < clients % workers else 0)
                  for i in range(workers)]:
        processes.append(await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--drain-worker", str(port), str(share),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE))
    for process in processes:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 300)
        if not line.startswith(b"ready"):
            raise RuntimeError(f"a draining worker did not start: {line!r}")
    return processes


async def _release(processes: list[asyncio.subprocess.Process]) -> float:
    """Let the workers go; returns the CPU seconds the draining ones report having used."""
    for process in processes:
        assert process.stdin is not None
        process.stdin.close()
    cpu = 0.0
    for process in processes:
        assert process.stdout is not None
        for line in (await process.stdout.read()).splitlines():
            if line.startswith(b"{"):
                cpu += json.loads(line)["cpu"]
    await asyncio.gather(*(process.wait() for process in processes))
    return cpu


class GcPauses:
    """The garbage collector's pauses in this (the gateway's) process while watching."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._began))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    @property
    def longest_ms(self) -> float:
        return max((p for _, p in self.pauses), default=0.0) * 1000

    @property
    def full(self) -> int:
        return sum(1 for generation, _ in self.pauses if generation == 2)


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return (statistics.median(ordered),
            ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))])


async def _paced(notifier: relaybus.Notifier, count: int) -> None:
    for i in range(count):
        await notifier.info({}, "bench.latency", {"i": i, "sent_ms": time.time() * 1000})
        await asyncio.sleep(LATENCY_GAP)  # one at a time: latency, not queueing


async def loaded(events: int, clients: int, workers: int, rate: float, samples: int,
                 driver: Any, round_: int) -> dict[str, float]:
    """Deliveries/s to ``clients`` batching WebSocket clients; then latency at ``rate``."""
    async with await relaybus.connect(f"memory://firehose-loaded-{round_}",
                                      control_exchange="bench") as bus:
        gateway = Gateway(bus, GatewayOptions(http="127.0.0.1:0", client_queue=events,
                                              replay_events=events,
                                              max_connections=clients + 100))
        async with gateway.running():
            notifier = bus.notifier("bench.host1", topics=["notifications"])
            processes = await _start_counting(gateway.port, clients, events, workers)
            load = os.getloadavg()[0]
            started, cpu = time.monotonic(), time.process_time()
            for i in range(events):
                await notifier.info({}, "bench.fanout", {"i": i, "pad": PAD})
            results = [await _worker_result(process) for process in processes]
            elapsed = max(r["last"] for r in results) - started
            cpu = time.process_time() - cpu
            deliveries = events * clients
            counted = sum(r["counted"] for r in results)
            if counted != deliveries:
                raise RuntimeError(f"the clients counted {counted} events, not {deliveries}")
            figures = {"load": load, "deliveries_s": deliveries / elapsed,
                       "gateway_us": cpu / deliveries * 1e6,
                       "clients_us": sum(r["cpu"] for r in results) / deliveries * 1e6,
                       "dropped": sum(r["dropped"] for r in results)}
            # Now at a steady rate, to clients that only read (as if on other machines;
            # parsing every frame here would take the CPU the gateway and browser need),
            # and one more that measures.
            processes = await _hold_draining(gateway.port, clients, workers)
            if driver is not None:
                await asyncio.to_thread(driver.get, gateway.url + "healthz")
                ok = await asyncio.to_thread(driver.execute_async_script, BROWSER_CLIENT,
                                             f"ws://127.0.0.1:{gateway.port}/ws?topic=%23")
                if not ok:
                    raise RuntimeError("the browser could not open the WebSocket")
            else:
                meter = await _start_worker(f"ws://127.0.0.1:{gateway.port}/ws", 1, samples,
                                            "latency")
            figures["latency_load"] = os.getloadavg()[0]
            cpu = time.process_time()
            with GcPauses() as pauses:
                await _at_rate(notifier, samples, rate)
                if driver is not None:
                    latencies = await _browser_latencies(driver, samples)
                else:
                    latencies = (await _worker_result(meter))["latencies"]
            # deliveries while measuring: every event to every subscriber (and the meter)
            figures["latency_gateway_us"] = ((time.process_time() - cpu)
                                             / (samples * (clients + 1)) * 1e6)
            figures["gc_longest_ms"], figures["gc_full"] = pauses.longest_ms, pauses.full
            figures["drain_cpu_s"] = await _release(processes)
            figures["load_after"] = os.getloadavg()[0]
    figures["p50_ms"], figures["p99_ms"] = _percentiles(latencies)
    return figures


async def _at_rate(notifier: relaybus.Notifier, count: int, rate: float) -> None:
    """``count`` events at ``rate`` per second (on schedule: a late one is not made up
    for by a burst beyond the next few)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await notifier.info({}, "bench.latency", {"i": i, "sent_ms": time.time() * 1000})


async def _browser_latencies(driver: Any, count: int) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + 60
    while len(latencies) < count and time.monotonic() < deadline:
        latencies = await asyncio.to_thread(driver.execute_script, "return window.latencies;")
    if len(latencies) < count:
        raise RuntimeError(f"the browser got {len(latencies)} of {count} events")
    return latencies


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
            latencies = await _browser_latencies(driver, count)
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


async def main(scale: float, rounds: int, clients: int, browser: bool, idle_n: int,
               loaded_clients: int, workers: int, rate: float) -> dict[str, float]:
    events = max(50, int(5000 * scale))
    samples = max(20, int(300 * scale))
    fan: list[dict[str, float]] = []
    python: list[tuple[float, float]] = []
    chromium: list[tuple[float, float]] = []
    console: list[tuple[float, float]] = []
    idles: list[dict[str, float]] = []
    loads: list[dict[str, float]] = []
    load_average = os.getloadavg()[0]
    driver = _chromium() if browser else None
    try:
        for round_ in range(rounds):
            if idle_n:
                idles.append(await idle(idle_n, round_))
            if loaded_clients:
                loads.append(await loaded(max(20, int(1000 * scale)), loaded_clients,
                                          workers, rate, samples, driver, round_))
            if not clients:
                continue
            fan.append(await fan_out(events, clients, round_))
            python.append(await python_latency(samples, round_))
            if driver is not None:
                chromium.append(await browser_latency(driver, samples, round_))
                console.append(await browser_latency(driver, samples, round_, console=True))
    finally:
        if driver is not None:
            await asyncio.to_thread(driver.quit)
    figures: dict[str, float] = {"load average (1 min) at start": load_average}
    if idles:
        figures[f"{idle_n} idle subscribers: KB each"] = statistics.median(
            i["kb_per_subscriber"] for i in idles)
        figures[f"{idle_n} idle subscribers: gateway RSS MB"] = statistics.median(
            i["rss_mb"] for i in idles)
        figures[f"{idle_n} idle subscribers: connect s"] = statistics.median(
            i["connect_s"] for i in idles)
    if loads:
        prefix = f"{loaded_clients} batching ws clients"

        def median(key: str) -> float:
            return statistics.median(f[key] for f in loads)

        figures[f"{prefix}: load average at start"] = median("load")
        figures[f"{prefix} deliveries_s"] = median("deliveries_s")
        figures[f"{prefix}: gateway CPU us per delivery"] = median("gateway_us")
        figures[f"{prefix}: clients' CPU us per delivery"] = median("clients_us")
        figures[f"{prefix} dropped"] = sum(f["dropped"] for f in loads)
        who = "browser" if browser else "python ws"
        under = f"{prefix}, {rate:g} events/s"
        figures[f"{under}: load average at start"] = median("latency_load")
        figures[f"{under}: {who} latency p50_ms"] = median("p50_ms")
        figures[f"{under}: {who} latency p99_ms"] = median("p99_ms")
        figures[f"{under}: worst round's p99_ms"] = max(f["p99_ms"] for f in loads)
        figures[f"{under}: gateway CPU us per delivery"] = median("latency_gateway_us")
        figures[f"{under}: draining clients' CPU s"] = median("drain_cpu_s")
        figures[f"{under}: longest GC pause ms"] = median("gc_longest_ms")
        figures[f"{under}: full GCs"] = median("gc_full")
        figures[f"{prefix}: load average at end"] = median("load_after")
    if not fan:
        return figures
    figures |= {
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
    if len(sys.argv) > 1 and sys.argv[1] == "--count-worker":
        count_worker(*map(int, sys.argv[2:5]))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--drain-worker":
        drain_worker(int(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--idle-worker":
        port, kind, count = sys.argv[2:5]
        asyncio.run(idle_worker(int(port), kind, int(count)))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100,
                        help="clients of the plain fan-out (0: skip it and the latencies)")
    parser.add_argument("--idle", type=int, default=10_000,
                        help="idle subscribers to hold (0: skip)")
    parser.add_argument("--loaded-clients", type=int, default=1000,
                        help="clients of the loaded fan-out (0: skip)")
    parser.add_argument("--workers", type=int, default=2,
                        help="client processes of the loaded fan-out")
    parser.add_argument("--loaded-rate", type=float, default=250.0,
                        help="events/s while measuring latency under load")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    result = asyncio.run(main(args.scale, args.rounds, args.clients, not args.no_browser,
                              args.idle, args.loaded_clients, args.workers, args.loaded_rate))
    if args.json:
        print(json.dumps(result))
    else:
        _table(result, args.scale, args.rounds)
