"""``relaybus tap``: watch a topic's requests and notifications as they pass."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import click

import relaybus
from relaybus import Target
from relaybus.cli.common import json_option, run, settings_from, url_option


def describe(exchange: str, routing_key: str, message: dict[str, Any]) -> dict[str, Any]:
    """What one tapped message is, in a few fields."""
    if "event_type" in message:
        return {"kind": "notification", "exchange": exchange, "routing_key": routing_key,
                "event_type": message.get("event_type"),
                "publisher_id": message.get("publisher_id"),
                "priority": message.get("priority"), "payload": message.get("payload")}
    kind = "call" if "_msg_id" in message else "cast"
    return {"kind": kind, "exchange": exchange, "routing_key": routing_key,
            "method": message.get("method"), "namespace": message.get("namespace"),
            "version": message.get("version"), "args": message.get("args")}


@click.command()
@click.argument("topic")
@click.option("--exchange", default=None, help="Exchange (default: control exchange).")
@click.option("--count", type=int, default=None, help="Stop after this many messages.")
@url_option
@json_option
@click.pass_context
def tap(ctx: click.Context, topic: str, exchange: str | None, count: int | None,
        url: str | None, as_json: bool) -> None:
    """Show requests and notifications on TOPIC without taking them from their consumers."""
    settings = settings_from(ctx, url=url)

    async def go() -> None:
        seen = 0
        done = asyncio.Event()

        async def show(published_to: str, routing_key: str, message: dict[str, Any]) -> None:
            nonlocal seen
            entry = describe(published_to, routing_key, message)
            if as_json:
                click.echo(json.dumps(entry, ensure_ascii=False))
            elif entry["kind"] == "notification":
                click.echo(f"notification {published_to}/{routing_key} {entry['event_type']} "
                           f"from {entry['publisher_id']}: {json.dumps(entry['payload'])}")
            else:
                click.echo(f"{entry['kind']:<12} {published_to}/{routing_key} "
                           f"{entry['method']}({json.dumps(entry['args'])})")
            seen += 1
            if count is not None and seen >= count:
                done.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        async with await relaybus.connect(settings.url,
                                          control_exchange=settings.control_exchange) as bus:
            subscription = await bus.tap(Target(exchange=exchange, topic=topic), show)
            click.echo(f"tapping {topic}; Ctrl-C stops", err=True)
            await done.wait()
            await subscription.stop()

    run(go(), as_json)
