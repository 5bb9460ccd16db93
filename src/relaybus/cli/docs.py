"""``relaybus docs``: the AsyncAPI document of a service (3.0.0, or 3.1.0 on request)."""

from __future__ import annotations

import json

import click
import yaml

from relaybus.cli.common import EXIT_BAD_INPUT, CommandError
from relaybus.contracts import asyncapi_document
from relaybus.contracts.asyncapi import DEFAULT_SERVERS, VERSIONS
from relaybus.contracts.html import render_html
from relaybus.contracts.loading import LoadError, as_service, load_object


@click.command()
@click.argument("reference", metavar="MODULE:OBJECT")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json", "html"]), default="yaml",
              show_default=True, help="Output format.")
@click.option("--topic", default=None, help="Topic, when OBJECT is a plain endpoint.")
@click.option("--control-exchange", default="openstack", show_default=True,
              help="The exchange used when the service's Target names none.")
@click.option("--server", "servers", multiple=True, metavar="URL",
              help="Transport URL of a broker the service runs on (rabbit://... or "
                   "nats://...; repeat; default: both on localhost).")
@click.option("--asyncapi-version", type=click.Choice(list(VERSIONS)), default=VERSIONS[0],
              show_default=True, help="The AsyncAPI version to write.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output.")
def docs(reference: str, fmt: str, topic: str | None, control_exchange: str,
         servers: tuple[str, ...], asyncapi_version: str, output: str | None) -> None:
    """Write the AsyncAPI document of a relaybus.Service (or an endpoint)."""
    try:
        service = as_service(load_object(reference), topic=topic)
    except LoadError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from None
    try:
        document = asyncapi_document(service, control_exchange=control_exchange,
                                     servers=servers or DEFAULT_SERVERS,
                                     asyncapi_version=asyncapi_version)
    except ValueError as exc:  # a server URL it cannot describe
        raise CommandError(str(exc), EXIT_BAD_INPUT) from None
    if fmt == "json":
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    elif fmt == "yaml":
        text = yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False,
                              allow_unicode=True)
    else:
        text = render_html(document)
    if output:
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise CommandError(f"cannot write {output}: {exc.strerror}", EXIT_BAD_INPUT) from None
    else:
        click.echo(text, nl=False)
