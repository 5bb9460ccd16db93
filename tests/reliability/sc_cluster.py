"""Scenario 2: a clustered broker loses the node a client is attached to, five times in a row.

A 3-node cluster of the scenario's own (NATS with JetStream and streams kept on all three
nodes; RabbitMQ with quorum queues) carries a stream of casts and notifications from a
producer bus to a consumer bus (an RPC server and a notification listener). Every send is
confirmed (NATS: the server's receipt of a cast, JetStream's ack of a notification;
RabbitMQ: publisher confirms) and retried until it is, counting the errors by type.

Five times, the node that one bus is attached to (the producer's, then the consumer's, in
turn, as the *broker* reports it) gets SIGKILL; once both clients have failed over it is
started again and the cluster must be whole before the next kill. Per kill and client:

* the producer's failover: from the kill to the next confirmed cast and the next confirmed
  notification *sent after it*;
* the consumer's failover: from the kill to the moment the broker shows every consumer back
  (NATS: the server's three subjects once each in ``/connz`` and the JetStream consumer
  with a pull request waiting; RabbitMQ: ``list_consumers`` shows one consumer for each of
  the server's and the pool's queues on the consumer's node and none on another live
  node; a quorum queue keeps a dead node's consumers until it is back, those are only
  counted); then deliveries must resume (the last cast and notification confirmed once
  the producer has failed over arrive; on NATS the consumer's ack floor also reaches the
  stream's end as it was then).

A client that has not failed over within ``FAILOVER_TIMEOUT`` ends the kills (the node is
started again first). Every confirmed message must arrive; duplicates (a retried send the
broker had in fact taken) are counted by sequence number: at least once, not exactly once.
Stopping the server and listener at the end must leave the consumer bus's connection as it
is (the broker still shows the same one).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import nats
from clusters import NatsCluster, RabbitCluster
from figures import Figures
from transports import unique

import relaybus
from relaybus import Target

KILLS = 5
FAILOVER_TIMEOUT = 20.0  # per kill and client: longer is "stuck"
DRAIN_TIMEOUT = 20.0
WARM_UP = 0.5  # of steady streaming before each kill
PACE = 0.01  # between two sends of a kind: a stream, not a flood
RETRY_PAUSE = 0.05
# A send waits at most 5 s for its confirm (then it is retried). NATS: streams on all three
# nodes; a lost pull request noticed within 2 s, and what was delivered to a dead
# connection sent again after 5 s (JetStream's ack_wait)
OPTIONS = {"nats": {"stream_replicas": 3, "send_timeout": 5, "idle_heartbeat": 1,
                    "ack_wait": 5},
           "rabbit": {"rabbit_quorum_queue": True, "send_timeout": 5}}


class Sink:
    """The consumer's endpoints: counts every cast and notification by sequence number."""

    def __init__(self) -> None:
        self.casts: Counter[int] = Counter()
        self.notes: Counter[int] = Counter()
        self.probes: set[str] = set()

    async def record(self, ctxt: Any, seq: int) -> None:
        self.casts[seq] += 1

    async def probe(self, ctxt: Any, token: str) -> None:
        self.probes.add(token)

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.notes[payload["seq"]] += 1


class Producer:
    """A stream of casts and a stream of notifications, each send retried until confirmed.

    The two streams run side by side, so one that is stuck does not hold up the other.
    After :meth:`watch` it records when the first cast and the first notification *sent
    after* a moment were confirmed: the producer's failover, per kind.
    """

    def __init__(self, client: relaybus.RPCClient, notifier: relaybus.Notifier,
                 figures: Figures) -> None:
        self._sends = {"cast": lambda seq: client.cast({}, "record", seq=seq),
                       "notify": lambda seq: notifier.info({}, "cluster.tick", {"seq": seq})}
        self.figures = figures
        self.confirmed: dict[str, set[int]] = {kind: set() for kind in self._sends}
        self.last_error: dict[str, str] = {}
        self.abandoned = 0
        self.since = self.origin = 0.0
        self.first: dict[str, float] = {}
        self.recovered = asyncio.Event()
        self._stopping = False
        self._give_up_at = float("inf")

    def watch(self, since: float, origin: float) -> None:
        """Record the first confirmations of sends started after ``since``, timed from
        ``origin`` (the kill)."""
        self.since, self.origin, self.first = since, origin, {}
        self.last_error.clear()
        self.recovered.clear()

    def failover(self, kind: str) -> str:
        return f"{self.first[kind] - self.origin:.2f}" if kind in self.first else "none"

    async def run(self) -> None:
        await asyncio.gather(*(self._stream(kind) for kind in self._sends))

    async def _stream(self, kind: str) -> None:
        seq = 0
        while not self._stopping:
            await self._until_confirmed(kind, seq, self._sends[kind])
            seq += 1
            await asyncio.sleep(PACE)

    async def _until_confirmed(self, kind: str, seq: int, send: Any) -> None:
        while time.monotonic() < self._give_up_at:
            started = time.monotonic()
            self.figures.sent += 1
            try:
                await send(seq)
            except relaybus.MessagingError as exc:
                self.figures.error(exc)
                self.last_error[kind] = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(RETRY_PAUSE)
                continue
            self.confirmed[kind].add(seq)
            if started >= self.since and kind not in self.first:
                self.first[kind] = time.monotonic()
                if len(self.first) == len(self._sends):
                    self.recovered.set()
            return
        self.abandoned += 1

    def stop(self, grace: float) -> None:
        """Finish the sends under way (retrying for at most ``grace`` s), then stop."""
        self._stopping = True
        self._give_up_at = time.monotonic() + grace


async def _quiet(*args: Any) -> None:
    """The probe's connection events are expected (its node gets killed): no log."""


class NatsWatch:
    """What the NATS cluster itself says about the consumer bus's consumers."""

    def __init__(self, cluster: NatsCluster, bus: relaybus.Bus, topic: str, ntopic: str,
                 pool: str) -> None:
        naming = bus.driver.naming  # type: ignore[attr-defined]
        self.cluster = cluster
        self.name = bus.driver.connection_name  # type: ignore[attr-defined]
        self.subjects = [s for s, _ in naming.server_subjects(Target(topic=topic, server="s1"))]
        self.stream = naming.stream(Target(topic=ntopic))[0]
        self.durable = naming.consumer(pool, "info")
        self._nc: Any = None

    async def open(self) -> None:
        servers = [f"nats://127.0.0.1:{n.port}" for n in self.cluster.nodes]
        self._nc = await nats.connect(servers=servers, name="relaybus-rel-probe",
                                      reconnect_time_wait=0.2, max_reconnect_attempts=-1,
                                      connect_timeout=2, error_cb=_quiet,
                                      disconnected_cb=_quiet, reconnected_cb=_quiet)

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()

    async def mark(self) -> int:
        """The stream's last sequence number now (what the consumer must get to)."""
        while True:
            try:
                info = await self._nc.jetstream(timeout=2).stream_info(self.stream)
                return int(info.state.last_seq)
            except (nats.errors.Error, TimeoutError):
                await asyncio.sleep(0.2)  # a leader election: ask again

    async def consumers(self, mark: int | None) -> tuple[bool, str]:
        """(all consumers back [and caught up to ``mark``], what the broker showed)."""
        conns = await asyncio.to_thread(self.cluster.connections, self.name)
        if len(conns) != 1:
            return False, f"{len(conns)} connections named like the consumer"
        subs = Counter(conns[0][1].get("subscriptions_list") or [])
        core = [subs[s] for s in self.subjects]
        try:
            info = await self._nc.jetstream(timeout=2).consumer_info(self.stream, self.durable)
        except (nats.errors.Error, TimeoutError) as exc:
            return False, f"subjects {core}; consumer info: {type(exc).__name__}"
        acked = int(info.ack_floor.stream_seq or 0)
        waiting = int(info.num_waiting or 0)
        seen = (f"on n{conns[0][0]}: server subjects {core}, pull requests {waiting}, "
                f"acked to {acked}" + ("" if mark is None else f"/{mark}"))
        ok = core == [1] * len(core) and waiting >= 1 and (mark is None or acked >= mark)
        return ok, seen


class RabbitWatch:
    """What the RabbitMQ cluster itself says about the consumer bus's consumers."""

    def __init__(self, cluster: RabbitCluster, bus: relaybus.Bus, topic: str,
                 pool: str) -> None:
        self.cluster = cluster
        self.name = bus.driver.connection_name  # type: ignore[attr-defined]
        # queue name (a prefix for the server's own fanout queue) -> label
        self.queues = {topic: "topic", f"{topic}.s1": "server", f"{topic}_fanout_": "fanout",
                       pool: "pool"}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def mark(self) -> None:
        return None

    async def consumers(self, mark: int | None) -> tuple[bool, str]:
        return await asyncio.to_thread(self._consumers)

    def _consumers(self) -> tuple[bool, str]:
        try:
            conns = self.cluster.connections(self.name)
            consumers = self.cluster.consumers()
        except Exception as exc:  # noqa: BLE001 - a node going down mid-command: ask again
            return False, f"rabbitmqctl: {type(exc).__name__}"
        if len(conns) != 1:
            return False, f"{len(conns)} connections named like the consumer"
        here = conns[0][0]
        live = {node.index for node in self.cluster.nodes if node.alive}
        counts: Counter[str] = Counter()
        elsewhere = left = 0
        for queue, node in consumers:
            key = next((k for k in self.queues if queue == k
                        or (k.endswith("_fanout_") and queue.startswith(k))), None)
            if key is None:
                continue
            if node not in live:
                left += 1  # a quorum queue keeps a dead node's consumers until it is back
            elif node != here:
                elsewhere += 1  # a live consumer that is not the client's: a zombie
            else:
                counts[key] += 1
        seen = f"on n{here}: consumers " + ", ".join(
            f"{label} {counts[key]}" for key, label in self.queues.items())
        if elsewhere:
            seen += f", {elsewhere} more on another live node"
        if left:
            seen += f" (+{left} left on the dead node)"
        return all(counts[key] == 1 for key in self.queues) and not elsewhere, seen


async def _probe(bus: relaybus.Bus, topic: str, sink: Sink) -> list[str]:
    """Cast once to the server by name and once to every server (fanout): the queues the
    stream does not use. Returns the ones that did not arrive within FAILOVER_TIMEOUT."""
    targets = {"server": Target(topic=topic, server="s1"),
               "fanout": Target(topic=topic, fanout=True)}
    deadline = time.monotonic() + FAILOVER_TIMEOUT
    for token, target in targets.items():
        while True:
            try:
                await bus.rpc_client(target).cast({}, "probe", token=token)
                break
            except relaybus.MessagingError:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(RETRY_PAUSE)
    while not sink.probes >= set(targets) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls what sends no event
        await asyncio.sleep(0.1)  # nothing signals an arrival
    return sorted(set(targets) - sink.probes)


async def _watch_consumers(watch: Any, producer: Producer, sink: Sink, killed_at: float
                           ) -> tuple[float | None, str]:
    """Poll the broker until every consumer is back and deliveries resumed.

    Returns (failover s, what the broker showed last). The failover time is when the broker
    first showed every consumer back; deliveries resuming is then required, not timed: the
    last cast (notification) confirmed once the producer's casts (notifications) failed
    over must arrive, and on NATS the consumer's ack floor reach the stream's end as it
    was then. A kind of send the producer never got through is not waited for.
    """
    deadline = killed_at + FAILOVER_TIMEOUT
    back_at: float | None = None
    marks: dict[str, int] = {}
    mark = None
    seen = "nothing yet"
    arrived = {"cast": sink.casts, "notify": sink.notes}
    while True:
        for kind in set(producer.first) - set(marks):
            marks[kind] = max(producer.confirmed[kind])
            if kind == "notify":
                mark = await watch.mark()
        ok, seen = await watch.consumers(mark)
        back_at = back_at or (time.monotonic() if ok else None)
        resumed = all(seq in arrived[kind] for kind, seq in marks.items())
        if back_at is not None and ok and resumed \
                and (len(marks) == len(arrived) or time.monotonic() > deadline):
            return back_at - killed_at, seen
        if time.monotonic() > deadline:
            return None, seen + ("" if back_at is None else "; deliveries did not resume")
        await asyncio.sleep(0.1)


async def _attached(cluster: Any, names: dict[str, str]) -> dict[str, int | None]:
    """The node the broker shows each client attached to, waiting while one reconnects."""
    deadline = time.monotonic() + FAILOVER_TIMEOUT
    while True:
        nodes = await asyncio.to_thread(cluster.nodes_of, list(names.values()))
        if None not in nodes.values() or time.monotonic() > deadline:
            return {who: nodes[name] for who, name in names.items()}
        await asyncio.sleep(0.2)


async def _kill_once(k: int, cluster: Any, names: dict[str, str], producer: Producer,
                     sink: Sink, watch: Any, figures: Figures, failovers: list[float]) -> bool:
    """Kill the node a client is attached to, watch both fail over, restart the node."""
    whose = ("producer", "consumer")[k % 2]
    await asyncio.sleep(WARM_UP)
    attached = await _attached(cluster, names)
    victim = attached[whose]
    if victim is None:
        figures.notes.append(f"kill {k + 1}: the {whose} is attached to no live node")
        return False
    on_victim = "+".join(who for who, node in attached.items() if node == victim)
    killed_at = time.monotonic()
    await asyncio.to_thread(cluster.kill, victim)
    producer.watch(since=time.monotonic(), origin=killed_at)  # sends to a dead node only
    consumer = asyncio.ensure_future(_watch_consumers(watch, producer, sink, killed_at))
    try:
        async with asyncio.timeout(FAILOVER_TIMEOUT):
            await producer.recovered.wait()
        failovers.append(max(producer.first.values()) - killed_at)
        produced: float | None = failovers[-1]
    except TimeoutError:
        produced = None
    stuck = {kind: producer.last_error.get(kind, "no answer")
             for kind in ("cast", "notify") if kind not in producer.first}
    consumed, seen = await consumer
    restart = time.monotonic()
    await asyncio.to_thread(cluster.start, victim)
    await asyncio.to_thread(cluster.wait_ready)
    figures.notes.append(
        f"kill {k + 1}: n{victim} ({on_victim} attached); producer failover "
        + ("NONE" if produced is None else f"{produced:.2f} s")
        + f" (cast {producer.failover('cast')}, notify {producer.failover('notify')})"
        + "".join(f"; {kind} stuck: {error}" for kind, error in stuck.items())
        + "; consumers back " + ("NEVER" if consumed is None else f"{consumed:.2f} s")
        + f" [{seen}]; node back, cluster whole in {time.monotonic() - restart:.1f} s")
    return produced is not None and consumed is not None


async def run(transport: str, url: str) -> Figures:
    """Run the scenario on a cluster of the transport's own (``url`` is not used)."""
    figures = Figures("cluster node killed x5", transport)
    began = time.monotonic()
    cluster: Any = NatsCluster() if transport == "nats" else RabbitCluster()
    formed = time.monotonic() - began
    sink = Sink()
    topic, ntopic, pool = unique("cluster"), unique("cluster_n"), unique("pool")
    kills = 0
    failovers: list[float] = []
    watch: Any = None
    try:
        async with await relaybus.connect(cluster.url(1), **OPTIONS[transport]) as consumer_bus, \
                await relaybus.connect(cluster.url(0), **OPTIONS[transport]) as producer_bus:
            watch = (NatsWatch(cluster, consumer_bus, topic, ntopic, pool)
                     if transport == "nats" else RabbitWatch(cluster, consumer_bus, topic, pool))
            await watch.open()
            server = consumer_bus.rpc_server(Target(topic=topic, server="s1"), [sink])
            listener = consumer_bus.notification_listener([Target(topic=ntopic)], [sink],
                                                          pool=pool)
            names = {"producer": producer_bus.driver.connection_name,  # type: ignore[attr-defined]
                     "consumer": consumer_bus.driver.connection_name}  # type: ignore[attr-defined]
            async with server, listener:
                producer = Producer(producer_bus.rpc_client(Target(topic=topic)),
                                    producer_bus.notifier("cluster", topics=[ntopic]), figures)
                streaming = asyncio.ensure_future(producer.run())
                try:
                    while kills < KILLS and await _kill_once(kills, cluster, names, producer,
                                                             sink, watch, figures, failovers):
                        kills += 1
                    await asyncio.sleep(WARM_UP)
                finally:
                    producer.stop(grace=FAILOVER_TIMEOUT)
                    await streaming
                end = time.monotonic() + DRAIN_TIMEOUT
                while (not producer.confirmed["cast"] <= set(sink.casts)  # noqa: ASYNC110 - polls what sends no event
                       or not producer.confirmed["notify"] <= set(sink.notes)) \
                        and time.monotonic() < end:
                    # draining: nothing signals the last arrival
                    await asyncio.sleep(0.1)
                final_ok, final_seen = await watch.consumers(None)
                missing = await _probe(producer_bus, topic, sink)
                before_stop = await asyncio.to_thread(cluster.identities, names["consumer"])
            await asyncio.sleep(0.5)  # a connection the stop broke has been replaced by now
            after_stop = await asyncio.to_thread(cluster.identities, names["consumer"])
    finally:
        if watch is not None:
            await watch.close()
        cluster.stop()  # not in a thread: it must run even while the task is cancelled
    casts, notes = producer.confirmed["cast"], producer.confirmed["notify"]
    figures.confirmed = len(casts) + len(notes)
    figures.received = sum(sink.casts.values()) + sum(sink.notes.values())
    figures.lost = len(casts - set(sink.casts)) + len(notes - set(sink.notes))
    figures.duplicated = (sum(n - 1 for n in sink.casts.values())
                          + sum(n - 1 for n in sink.notes.values()))
    figures.recovery_s = max(failovers) if failovers else None
    figures.check("zero confirmed messages lost", figures.lost == 0)
    figures.check(f"{KILLS} attached nodes killed: each time the producer failed over and "
                  "the broker showed every consumer back", kills == KILLS)
    figures.check("consumers all there at the end", final_ok)
    figures.check("a cast to the server by name and a fanout cast arrive at the end",
                  not missing)
    figures.check("no send abandoned", producer.abandoned == 0)
    figures.check("stopping server and listener kept the connection",
                  len(before_stop) == 1 and after_stop == before_stop)
    figures.notes.append(
        f"cluster of 3 formed in {formed:.1f} s; {len(casts)} casts + {len(notes)} "
        f"notifications confirmed; {sum(figures.errors.values())} failed sends retried; "
        f"at the end: {final_seen}, probe casts lost: {missing or 'none'}; "
        f"connection before/after stopping the consumers: "
        f"{sorted(before_stop)} / {sorted(after_stop)}; run {time.monotonic() - began:.0f} s")
    return figures
