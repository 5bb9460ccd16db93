"""``relaybus config show``: the effective settings and where each came from."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from relaybus import loops
from relaybus.cli.common import json_option, settings_from


@click.group()
def config() -> None:
    """Inspect relaybus's settings (flags > environment > config file > defaults)."""


@config.command()
@json_option
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective settings, secrets masked, and the event loop commands run on."""
    settings = settings_from(ctx)
    values = settings.masked()
    loop = loops.choose()
    if as_json:
        click.echo(json.dumps({"settings": values, "sources": settings.sources,
                               "config_file": str(settings.config_file or ""),
                               "loop": {"name": loop.name, "version": loop.version,
                                        "setting": loop.setting}}))
        return
    table = Table(title=f"relaybus settings (config file: {settings.config_file or 'none'})")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("from")
    for name, value in values.items():
        table.add_row(name, str(value), settings.sources[name])
    table.add_row("event loop", f"{loop.name} {loop.version or ''}".strip(),
                  f"{loops.ENV}={loop.setting}")
    Console().print(table)
