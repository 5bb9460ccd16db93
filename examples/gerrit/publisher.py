"""A gerrit-like event stream on the firehose, as germqtt put gerrit on firehose.openstack.org.

    python -m examples.gerrit.publisher [--bus URL] [--mqtt mqtt://firehose:PASSWORD@host:1883]
    mosquitto_sub -h host -t 'gerrit/#' -v

Each gerrit event is a notification with publisher_id = the project and event_type = the
gerrit event name, on a bus whose control exchange is ``gerrit``, so the firehose's default
topic template gives germqtt's topics: ``gerrit/<project>/<event>``, e.g.
``gerrit/openstack/nova/comment-added`` (a project's slash adds a level, as in germqtt's
``gerrit/openstack-infra/germqtt/comment-added``). Anyone subscribes; only the gateway
publishes (deploy/mosquitto's ACL).

On ``memory://`` (the default) the gateway runs in this process, publishing to ``--mqtt``
when given; on a real broker run ``relaybus firehose --bus URL --mqtt ...`` beside it
(``--no-gateway``). Events flow until Ctrl-C (or ``--events N``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
from typing import Any

import relaybus

EXCHANGE = "gerrit"
PROJECTS = ("openstack/nova", "openstack/neutron", "openstack-infra/germqtt")
PEOPLE = ("Matthew Treinish", "Dmitry Tantsur", "Jiri Tomasek", "Thomas Herve")


def gerrit_events(number: int) -> list[tuple[str, str, dict[str, Any]]]:
    """The life of one change: (project, event, payload) as gerrit's stream-events has them."""
    project = PROJECTS[number % len(PROJECTS)]
    owner, reviewer = PEOPLE[number % len(PEOPLE)], PEOPLE[(number + 1) % len(PEOPLE)]
    change = {"project": project, "branch": "master", "number": 40000 + number,
              "subject": f"Fix the thing, take {number}",
              "owner": {"name": owner}, "url": f"https://review.example.org/{40000 + number}"}
    patchset = {"number": 1, "revision": f"{number:040x}", "uploader": {"name": owner}}
    return [
        (project, "patchset-created", {"type": "patchset-created", "change": change,
                                       "patchSet": patchset}),
        (project, "comment-added", {"type": "comment-added", "change": change,
                                    "patchSet": patchset, "author": {"name": reviewer},
                                    "comment": "Patch Set 1: Code-Review+2",
                                    "approvals": [{"type": "Code-Review", "value": "2"}]}),
        (project, "change-merged", {"type": "change-merged", "change": change,
                                    "patchSet": patchset, "submitter": {"name": reviewer}}),
    ]


async def main(url: str | None, http: str, mqtt: str | None, gateway: bool, events: int,
               pause: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with await relaybus.connect(url, control_exchange=EXCHANGE) as bus, \
            contextlib.AsyncExitStack() as stack:
        if gateway:
            from relaybus.gateway import Gateway, GatewayOptions

            firehose = await stack.enter_async_context(
                Gateway(bus, GatewayOptions(http=http, mqtt=mqtt)).running())
            print(f"gerrit publisher: console {firehose.url}?topic=gerrit/%23", flush=True)
        notifiers: dict[str, relaybus.Notifier] = {}
        sent = 0
        for number in itertools.count(1):
            for project, name, payload in gerrit_events(number):
                if stop.is_set() or (events and sent >= events):
                    return
                notifier = notifiers.get(project) or notifiers.setdefault(
                    project, bus.notifier(project, topics=["notifications"]))
                await notifier.info({}, name, payload)
                sent += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bus", default=None, help="transport URL (default memory://)")
    parser.add_argument("--http", default="127.0.0.1:8765", help="the embedded gateway's host:port")
    parser.add_argument("--mqtt", default=None, help="MQTT broker for the embedded gateway")
    parser.add_argument("--no-gateway", action="store_true",
                        help="do not embed the gateway (run `relaybus firehose` instead)")
    parser.add_argument("--events", type=int, default=0, help="stop after N (0: never)")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between events")
    args = parser.parse_args()
    asyncio.run(main(args.bus, args.http, args.mqtt, not args.no_gateway, args.events,
                     args.pause))
