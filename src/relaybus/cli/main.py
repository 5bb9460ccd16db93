"""The ``relaybus`` command group; each command lives in a module of its own."""

from __future__ import annotations

import click

from relaybus import __version__, loops
from relaybus.cli.bench import bench
from relaybus.cli.broker import broker
from relaybus.cli.common import CommandError
from relaybus.cli.config import config
from relaybus.cli.conformance import conformance
from relaybus.cli.demo import demo
from relaybus.cli.dlq import dlq
from relaybus.cli.docs import docs
from relaybus.cli.firehose import firehose
from relaybus.cli.listen import listen
from relaybus.cli.notify import notify
from relaybus.cli.ping import ping
from relaybus.cli.rpc import call, cast
from relaybus.cli.serve import serve
from relaybus.cli.tap import tap


@click.group()
@click.version_option(__version__, prog_name="relaybus")
@click.option("--config", "config_file", default=None, envvar="RELAYBUS_CONFIG",
              help="TOML settings file (default: ./relaybus.toml when it exists).")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None) -> None:
    """relaybus: RPC and notifications for distributed services.

    Commands run on uvloop where it is installed, else on asyncio's loop ($RELAYBUS_LOOP:
    auto, asyncio or uvloop; `relaybus config show` says which).
    """
    try:
        loops.choose()  # a loop that cannot run is one line here, before any command starts
    except loops.LoopUnavailable as exc:
        raise CommandError(str(exc)) from None
    ctx.obj = {"config": config_file}


for command in (bench, broker, call, cast, config, notify, ping, serve, tap):
    cli.add_command(command)
cli.add_command(conformance)
cli.add_command(demo)
cli.add_command(firehose)
cli.add_command(listen)
cli.add_command(docs)
cli.add_command(dlq)


def main() -> None:
    """Entry point of the ``relaybus`` console script."""
    cli()
