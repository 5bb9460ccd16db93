"""Scenario 12: browser resume under churn.

A firehose gateway process gets a steady stream of notifications (200/s for 15 s) while
five WebSocket and five Server-Sent Events clients each drop their connection about once a
second (half the time abruptly: the TCP connection just goes; half the time politely) and
reconnect at once with the last event id they saw: ``?since=`` on /ws, ``Last-Event-ID``
on /events, as a browser's EventSource sends it. The whole stream fits the replay window,
so every client must end with every event exactly once, in order, without a gap marker or
a drop report.

Figures: ``sent``/``confirmed`` the feed; ``received`` every client's events together;
``lost`` the (client, event) pairs that never arrived; ``duplicated`` those that arrived
twice; ``recovery_s`` the worst resume time, from a drop to the hello of the new connection
(by then the gateway has taken the client's backlog); the notes add the worst time from a
drop to the next event, which also waits for the feed.

On memory:// the bus lives in the gateway's process, so the feed is POSTed to its /publish
endpoint; on rabbit:// a notifier process of its own feeds the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import statistics
import sys
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from figures import Figures
from transports import unique

import relaybus
from relaybus.transport.eventlog import Retention

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from firehose_support import (
    PUBLISH_TOKEN,
    GatewayProcess,
    SSEClient,
    event,
    ws_client,
)

HERE = Path(__file__).resolve().parent
RATE = 200  # events per second
FEED_SECONDS = 15.0
BATCH = 10  # events per paced send
WS_CLIENTS = SSE_CLIENTS = 5
HOLD = (0.6, 1.4)  # seconds a connection lives after its first event
# The whole stream (3,000 events) fits: a client slowed down by a loaded machine must still
# resume without a gap; what happens beyond the window is tested in tests/gateway.
REPLAY_EVENTS = 5000
CONNECT_WAIT = 15.0
CATCH_UP = 20.0  # after the feed, seconds the clients have to reach its last event
RESUME_BOUND = 5.0
SOURCE, EVENT_TYPE = "churn.feeder", "churn.tick"
FEEDER = ("import asyncio, sys\nimport sc_browser_churn\n"
          "asyncio.run(sc_browser_churn.feed(sys.argv[1], int(sys.argv[2])))\n")


async def _paced(total: int) -> AsyncIterator[range]:
    """Sequence numbers 0..total-1 in batches, BATCH at a time, at RATE per second."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for start in range(0, total, BATCH):
        delay = started + start / RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the publisher at a fixed rate
        yield range(start, min(start + BATCH, total))


async def feed(url: str, total: int) -> None:
    """The notifier process of the rabbit run: ``total`` notifications, then ``sent <n>``."""
    sent = 0
    async with await relaybus.connect(url) as bus:
        notifier = bus.notifier(SOURCE, topics=["notifications"])
        async for batch in _paced(total):
            for seq in batch:
                await notifier.info({}, EVENT_TYPE, {"seq": seq})
                sent += 1
    print(f"sent {sent}", flush=True)


class _WebSocket:
    """One /ws connection, its hello already read (firehose_support.ws_client)."""

    def __init__(self, stack: contextlib.AsyncExitStack, websocket: Any) -> None:
        self._stack = stack
        self._websocket = websocket

    @classmethod
    async def open(cls, gateway: GatewayProcess, topic: str, since: str | None) -> _WebSocket:
        stack = contextlib.AsyncExitStack()
        websocket = await stack.enter_async_context(ws_client(gateway.ws_url([topic], since)))
        return cls(stack, websocket)

    async def next(self) -> tuple[str, dict[str, Any]]:
        frame = json.loads(await self._websocket.recv())
        return frame["kind"], frame["event"] if frame["kind"] == "event" else frame

    async def drop(self, abrupt: bool) -> None:
        if abrupt:
            self._websocket.transport.abort()  # gone, no close handshake
        await self._stack.aclose()


class _EventStream:
    """One /events connection (firehose_support.SSEClient), its hello already read."""

    def __init__(self, sse: SSEClient) -> None:
        self._sse = sse

    @classmethod
    async def open(cls, gateway: GatewayProcess, topic: str,
                   since: str | None) -> _EventStream:
        sse = await SSEClient.open(gateway.port,
                                   "/events?topic=" + urllib.parse.quote(topic, safe=""),
                                   {"Last-Event-ID": since} if since else None)
        if sse.status != 200:
            body = await sse.body()
            await sse.close()
            raise AssertionError(f"/events answered {sse.status}: {body}")
        hello = await sse.message()
        assert hello["event"] == "hello", hello
        return cls(sse)

    async def next(self) -> tuple[str, dict[str, Any]]:
        message = await self._sse.message()
        data = json.loads(message["data"])
        if message["event"] == "message":
            cursor = _cursor(data)  # the SSE id: the log offset when there is a log
            assert message.get("id") == cursor, f"SSE id {message.get('id')} != {cursor}"
            return "event", data
        return message["event"], data

    async def drop(self, abrupt: bool) -> None:
        if abrupt:
            self._sse.writer.transport.abort()
        await self._sse.close()


@dataclass
class Client:
    """A browser-like client that drops its connection about once a second and resumes."""

    kind: str  # "ws" or "sse"
    index: int
    seqs: list[int] = field(default_factory=list)
    ids: dict[int, set[str]] = field(default_factory=dict)
    last_id: str | None = None
    connections: int = 0
    resumes: list[float] = field(default_factory=list)  # drop -> the new hello
    first_events: list[float] = field(default_factory=list)  # drop -> the next event
    controls: list[dict[str, Any]] = field(default_factory=list)
    stalls: int = 0
    failure: str | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return f"{self.kind}{self.index}"

    async def follow(self, gateway: GatewayProcess, topic: str, last_seq: int) -> None:
        """Churn until the stream's last event (``last_seq``) has arrived."""
        try:
            await self._churn(gateway, topic, last_seq)
        except Exception as exc:  # noqa: BLE001 - recorded, and fails the scenario
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self.connected.set()  # connected, or never will be: nobody waits in vain

    async def _churn(self, gateway: GatewayProcess, topic: str, last_seq: int) -> None:
        loop = asyncio.get_running_loop()
        rng = random.Random(f"{self.name}")
        opener = _WebSocket.open if self.kind == "ws" else _EventStream.open
        dropped_at: float | None = None
        while True:
            connection = await opener(gateway, topic, self.last_id)
            if dropped_at is not None:  # hello read: the gateway has resumed this client
                self.resumes.append(loop.time() - dropped_at)
            self.connections += 1
            self.connected.set()
            try:
                # The hold starts at a connection's first event: a client that has seen
                # nothing yet has no id to resume from, so it never drops before that.
                async with asyncio.timeout(None) as hold:
                    while True:
                        kind, data = await connection.next()
                        if kind != "event":
                            self.controls.append(data)
                            continue
                        seq = data["data"]["seq"]
                        self.seqs.append(seq)
                        self.ids.setdefault(seq, set()).add(data["id"])
                        self.last_id = _cursor(data)
                        if dropped_at is not None:
                            self.first_events.append(loop.time() - dropped_at)
                            dropped_at = None
                        if seq == last_seq:
                            return
                        if hold.when() is None:
                            hold.reschedule(loop.time() + rng.uniform(*HOLD))
            except TimeoutError:
                if not hold.expired():
                    self.stalls += 1  # the stream went quiet for firehose_support.WAIT
            finally:
                await connection.drop(abrupt=rng.random() < 0.5)
            dropped_at = loop.time()


def _cursor(event: dict[str, Any]) -> str:
    """What a client resumes after: the event's log offset (rabbit, nats), else its id."""
    return str(event.get("firehoseseq", event["id"]))


def _gateway(transport: str, url: str, exchange: str) -> GatewayProcess:
    common = ["--replay-events", str(REPLAY_EVENTS)]
    if transport == "memory":
        return GatewayProcess(["--bus", f"memory://?control_exchange={exchange}",
                               "--publish-token", PUBLISH_TOKEN, *common])
    return GatewayProcess(["--bus", _bus_url(url, exchange), "--pool", f"{exchange}-firehose",
                           *common])


def _bus_url(url: str, exchange: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}control_exchange={exchange}"


async def _feed_through_gateway(gateway: GatewayProcess, total: int, figures: Figures) -> None:
    async for batch in _paced(total):
        figures.sent += len(batch)
        try:
            await gateway.publish([event(SOURCE, EVENT_TYPE, {"seq": seq}) for seq in batch])
        except AssertionError as exc:  # the gateway did not answer 202
            figures.error(f"publish refused: {exc}")
            continue
        figures.confirmed += len(batch)


async def _feed_from_process(url: str, exchange: str, total: int, figures: Figures) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FEEDER, _bus_url(url, exchange), str(total), cwd=HERE,
        stdout=asyncio.subprocess.PIPE)
    figures.sent = total
    try:
        async with asyncio.timeout(FEED_SECONDS + 30):
            out, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0 or not out.startswith(b"sent "):
        figures.error(f"feeder exited {process.returncode}")
        return
    figures.confirmed = int(out.split()[1])


async def _delete_replay_log(url: str, exchange: str) -> None:
    """The gateway's replay log on the broker (its default name: <pool>.replay)."""
    async with await relaybus.connect(_bus_url(url, exchange)) as bus:
        log = await bus.driver.event_log(f"{exchange}-firehose.replay", Retention())
        await log.delete()
        await log.close()


async def _delete_rabbit_leftovers(url: str, exchange: str) -> None:
    import aiormq

    amqp = "amqp://" + url.split("://", 1)[1].split("?", 1)[0]
    connection = await aiormq.connect(amqp)
    try:
        channel = await connection.channel()
        await channel.queue_delete(f"{exchange}-firehose")
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()


async def _settled_stats(gateway: GatewayProcess) -> dict[str, Any]:
    """/stats once every client has left (or after 10 s): the gateway must forget them all."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        stats = await gateway.stats()
        if stats["clients"] == 0 or loop.time() > deadline:
            return stats
        await asyncio.sleep(0.1)  # a departure is the gateway's own business: poll /stats


async def _stream(transport: str, url: str, gateway: GatewayProcess, exchange: str,
                  clients: list[Client], figures: Figures) -> float:
    """Clients connected, the feed sent, the clients caught up; returns the feed's duration."""
    total = int(RATE * FEED_SECONDS)
    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(c.follow(gateway, f"{exchange}/#", total - 1),
                                 name=f"churn.{c.name}") for c in clients]
    try:
        async with asyncio.timeout(CONNECT_WAIT):
            await asyncio.gather(*(c.connected.wait() for c in clients))
        failed = [f"{c.name}: {c.failure}" for c in clients if c.failure]
        if failed:
            raise RuntimeError(f"clients failed to connect: {failed}")
        started = loop.time()
        if transport == "memory":
            await _feed_through_gateway(gateway, total, figures)
        else:
            await _feed_from_process(url, exchange, total, figures)
        fed_in = loop.time() - started
        await asyncio.wait(tasks, timeout=CATCH_UP)
        return fed_in
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _count(figures: Figures, clients: list[Client], total: int) -> dict[str, int]:
    """Fill received/lost/duplicated; return the other tallies the checks need."""
    expected = set(range(total))
    tally = {"out of order": 0, "gap markers": 0, "drop reports": 0, "ids disagree": 0}
    ids: dict[int, set[str]] = {}
    for client in clients:
        figures.received += len(client.seqs)
        figures.lost += len(expected - set(client.seqs))
        figures.duplicated += len(client.seqs) - len(set(client.seqs))
        tally["out of order"] += sum(1 for a, b in itertools.pairwise(client.seqs) if b < a)
        tally["gap markers"] += sum(1 for c in client.controls if c.get("kind") == "gap")
        tally["drop reports"] += sum(1 for c in client.controls if c.get("kind") == "dropped")
        for seq, seen in client.ids.items():
            ids.setdefault(seq, set()).update(seen)
    tally["ids disagree"] = sum(1 for seen in ids.values() if len(seen) > 1)
    return tally


async def run(transport: str, url: str) -> Figures:
    figures = Figures("browser resume under churn", transport)
    exchange = unique("churn")
    total = int(RATE * FEED_SECONDS)
    clients = ([Client("ws", i) for i in range(WS_CLIENTS)]
               + [Client("sse", i) for i in range(SSE_CLIENTS)])
    gateway = _gateway(transport, url, exchange)
    exit_code: int | None = None
    try:
        await asyncio.to_thread(gateway.start)
        fed_in = await _stream(transport, url, gateway, exchange, clients, figures)
        stats = await _settled_stats(gateway)
    finally:
        if gateway.process is not None:
            exit_code = await asyncio.to_thread(gateway.stop)
        if transport != "memory":
            await _delete_replay_log(url, exchange)
        if transport == "rabbit":
            await _delete_rabbit_leftovers(url, exchange)
    tally = _count(figures, clients, total)
    resumes = [r for c in clients for r in c.resumes]
    reconnects = [c.connections - 1 for c in clients]
    figures.recovery_s = max(resumes, default=None)
    figures.check("every event confirmed to the feeder", figures.confirmed == total)
    figures.check("no client failed", not any(c.failure for c in clients))
    figures.check("every client got every event (zero gaps)", figures.lost == 0)
    figures.check("zero duplicates", figures.duplicated == 0)
    figures.check("in order", tally["out of order"] == 0)
    figures.check("no gap marker, no drop report",
                  tally["gap markers"] == tally["drop reports"] == 0)
    figures.check("one id per event, the same for every client", tally["ids disagree"] == 0)
    # Each client aims at a reconnect every ~1-2 s; a loaded machine may hold one back for
    # a while, so the fleet must keep three quarters of that pace and every client churn.
    figures.check("the clients really churned (fleet >= 3/4 of one reconnect per 2 s each, "
                  "every client >= 3)",
                  sum(reconnects) >= len(reconnects) * FEED_SECONDS / 2 * 0.75
                  and min(reconnects) >= 3)
    first_events = [r for c in clients for r in c.first_events]
    figures.check("every reconnect resumed and went on", len(resumes) == sum(reconnects)
                  == len(first_events) and not any(c.stalls for c in clients))
    figures.check(f"every resume under {RESUME_BOUND:.0f} s",
                  figures.recovery_s is not None and figures.recovery_s < RESUME_BOUND)
    figures.check("the gateway took each event once and forgot every client",
                  stats["events_in"] == total and stats["clients"] == 0)
    figures.check("the gateway stopped cleanly", exit_code == 0)
    median = statistics.median(resumes) if resumes else 0.0
    figures.notes.append(
        f"{total} events in {fed_in:.1f} s to {WS_CLIENTS} WebSocket + {SSE_CLIENTS} SSE "
        f"clients; {sum(reconnects)} reconnects ({min(reconnects)}-{max(reconnects)} per "
        f"client, half abrupt); resume (drop to hello) median {median * 1000:.0f} ms, worst "
        f"{(figures.recovery_s or 0) * 1000:.0f} ms; drop to next event worst "
        f"{max(first_events, default=0) * 1000:.0f} ms; replay window {REPLAY_EVENTS} events; "
        f"gateway dropped {stats['dropped']}, redeliveries {stats['duplicates']}")
    for client in clients:
        if client.failure or client.stalls:
            figures.notes.append(f"{client.name}: {client.failure or ''} "
                                 f"stalls {client.stalls}")
    return figures
