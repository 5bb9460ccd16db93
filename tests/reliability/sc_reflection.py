"""Scenario 13: reply-address reflection.

A requester names as its reply address something that is not a reply inbox: another
service's RPC queue or subject, a notification queue, JetStream's API
(``$JS.API.STREAM.PURGE.<stream>``, ``...DELETE...``, ``$JS.API.CONSUMER.DELETE...``), a
wildcard. Before issue 12 a server published its reply (or a NATS cast confirmation) there
with its own credentials: stored notifications were purged, streams and durable consumers
deleted, replies injected into other services' queues. The promise: no such request runs,
nothing is published to any of those addresses (the victims see nothing, the stored
notifications are all still there), every attempt is refused and counted, and the server
keeps serving.
"""

from __future__ import annotations

import asyncio
from typing import Any

from figures import Figures
from raw import RawPeer
from transports import unique

import relaybus
from relaybus import Target
from relaybus.message import build_request, new_unique_id, pack

ROUNDS = 20
STORED = 5
WAIT = 15.0


def _addresses(transport: str, bus: relaybus.Bus, victim: str, kept: str) -> list[str]:
    if transport != "nats":
        return [victim, f"{kept}.info", f"{victim}.s1", "reply_" + "0" * 31,
                "amq.rabbitmq.reply-to", "x" * 300]
    stream, _ = bus.driver.naming.stream(Target(topic=kept))  # type: ignore[attr-defined]
    consumer = "info"  # the default pool's durable consumer
    return [f"relaybus.openstack.rpc.{victim}", f"relaybus.openstack.notify.{kept}.info",
            f"$JS.API.STREAM.PURGE.{stream}", f"$JS.API.STREAM.DELETE.{stream}",
            f"$JS.API.CONSUMER.DELETE.{stream}.{consumer}", "relaybus.>"]


async def run(transport: str, url: str) -> Figures:
    figures = Figures("reply-address reflection", transport)
    topic, victim, kept = unique("reflect"), unique("victim"), unique("kept")
    ran: list[Any] = []
    victim_ran: list[Any] = []
    got: list[Any] = []
    arrived = asyncio.Event()

    class Server:
        async def record(self, ctxt: Any, value: Any) -> None:
            ran.append(value)

        async def echo(self, ctxt: Any, value: Any) -> Any:
            return value

    class VictimServer:
        async def record(self, ctxt: Any, **kwargs: Any) -> None:
            victim_ran.append(kwargs)

    class Listener:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: Any) -> None:
            got.append(payload)
            arrived.set()

    async with await relaybus.connect(url) as bus, await relaybus.connect(url) as victims, \
            RawPeer(transport, url) as peer:
        notifier = victims.notifier("kept", topics=[kept])
        for n in range(STORED):  # they wait in the broker: nobody listens yet
            await notifier.info({}, "kept.stored", {"n": n})
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Server()]), \
                victims.rpc_server(Target(topic=victim, server="s1"), [VictimServer()]):
            addresses = _addresses(transport, bus, victim, kept)
            for _ in range(ROUNDS):
                for address in addresses:
                    call = pack(build_request("record", {"value": address}, {},
                                              msg_id=new_unique_id(), reply_q=address))
                    await peer.publish("rpc", topic, call, address)
                    figures.sent += 1
                    if transport == "nats":  # a cast's confirmation goes to the NATS reply
                        cast = pack(build_request("record", {"value": address}, {}))
                        await peer.publish("rpc", topic, cast, address)
                        figures.sent += 1
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            alive = await client.call({}, "echo", value="alive") == "alive"
        async with victims.notification_listener([Target(topic=kept)], [Listener()]):
            await notifier.info({}, "kept.marker", {"n": "end"})
            async with asyncio.timeout(WAIT):
                while not any(p == {"n": "end"} for p in got):
                    arrived.clear()
                    await arrived.wait()
        refused = dict(bus.driver.intake.refused)  # type: ignore[attr-defined]
        victim_refused = sum(victims.driver.intake.refused.values())  # type: ignore[attr-defined]
    stored = [p for p in got if p != {"n": "end"}]
    figures.received = len(stored)
    figures.lost = STORED - len({p["n"] for p in stored})
    figures.duplicated = len(stored) - len({p["n"] for p in stored})
    for reason, count in refused.items():
        figures.errors[f"refused: {reason}"] = count
    figures.check("the server kept serving", alive)
    figures.check("no hostile request ran", ran == [])
    figures.check("every attempt refused and counted",
                  refused.get("reply-address", 0) == figures.sent)
    figures.check("the victims received nothing", victim_ran == [] and victim_refused == 0)
    figures.check("stored notifications intact, nothing injected",
                  figures.lost == 0 and len(stored) == STORED)
    figures.notes.append(f"{figures.sent} requests naming {len(addresses)} hostile reply "
                         f"addresses; {len(stored)} of {STORED} stored notifications still "
                         f"delivered afterwards")
    return figures
