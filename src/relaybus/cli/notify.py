"""``relaybus notify``: send a notification from the shell."""

from __future__ import annotations

import json
from typing import Any

import click

import relaybus
from relaybus.cli.common import (
    fail,
    json_option,
    parse_json_object,
    quiet_logs,
    run,
    settings_from,
    url_option,
)
from relaybus.message import PRIORITIES


@click.command()
@click.argument("event_type")
@click.option("--payload", default="{}", show_default=True, help="The payload, as JSON.")
@click.option("--priority", type=click.Choice(PRIORITIES), default="info", show_default=True)
@click.option("--publisher-id", default=None,
              help="Who sends [default: the --service's name, else relaybus.cli].")
@click.option("--topic", "topics", multiple=True,
              help="Notification topic, repeatable [default: the --service's "
                   "notification topic, else notifications].")
@click.option("--service", "service_ref", default=None, metavar="MODULE:OBJECT",
              help="A relaybus.Service: payloads of the events it emits are checked "
                   "against their declared types before sending.")
@click.option("--context", "context_json", default=None, help="Context as a JSON object.")
@url_option
@json_option
@click.pass_context
def notify(ctx: click.Context, event_type: str, payload: str, priority: str,
           publisher_id: str | None, topics: tuple[str, ...], service_ref: str | None,
           context_json: str | None, url: str | None, as_json: bool) -> None:
    """Send notification EVENT_TYPE with a JSON payload."""
    settings = settings_from(ctx, url=url)
    quiet_logs(settings)
    emits: dict[str, Any] = {}
    if service_ref is not None:
        service = _service(service_ref, as_json)
        emits = service.emits
        publisher_id = publisher_id or service.name
        topics = topics or (service.notification_topic,)
    publisher_id = publisher_id or "relaybus.cli"
    topics = topics or ("notifications",)

    sent: list[str] = []  # the message_id, so a sender can find its event

    async def go() -> None:
        body = parse_json_object("--payload", payload)
        context = parse_json_object("--context", context_json) if context_json else {}
        if not isinstance(context, dict):
            raise ValueError("--context must be a JSON object")
        async with await relaybus.connect(settings.url,
                                          control_exchange=settings.control_exchange) as bus:
            notifier = bus.notifier(publisher_id, topics=list(topics), emits=emits)
            sent.append(await getattr(notifier, priority)(context, event_type, body))

    run(go(), as_json)
    if as_json:
        click.echo(json.dumps({"status": "sent", "message_id": sent[0]}))
    else:
        click.echo(f"{priority.upper()} {event_type} sent to {', '.join(topics)}")


def _service(reference: str, as_json: bool) -> relaybus.Service:
    """The Service ``reference`` names; a bad reference exits with one line (code 2)."""
    from relaybus.contracts.loading import LoadError, load_object

    try:
        service = load_object(reference)
    except LoadError as exc:
        fail(ValueError(f"--service: {exc}"), as_json)
    if not isinstance(service, relaybus.Service):
        fail(ValueError(f"--service: {reference} is not a relaybus.Service"), as_json)
    return service
