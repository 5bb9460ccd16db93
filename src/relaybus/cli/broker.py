"""``relaybus broker start|stop|status|run``: a real broker on this machine in one command.

It runs nats-server (extra ``relaybus[broker]``) on loopback with JetStream; while it runs,
every command given no URL (no ``--url``, ``$RELAYBUS_URL`` or config file) uses it, so a
service and its callers in different terminals reach each other.

Exit codes: 0 done (``status``: it runs), 1 ``status``: it does not run, 2 it cannot be
done as asked (the extra is missing, one runs already, the port is busy), 5 nats-server
failed to start or stop.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import click

from relaybus.cli import localbroker
from relaybus.cli.common import EXIT_BAD_INPUT, EXIT_TRANSPORT, json_option

T = TypeVar("T")
EXIT_NOT_RUNNING = 1

port_option = click.option("--port", type=click.IntRange(1, 65535), default=None,
                           envvar="RELAYBUS_BROKER_PORT",
                           help="Port on 127.0.0.1 (else $RELAYBUS_BROKER_PORT, else any "
                                "free port).")


def _error(text: str, code: int) -> NoReturn:
    click.echo(f"error: relaybus broker: {text}", err=True)
    sys.exit(code)


def _directory() -> Path:
    directory = localbroker.broker_dir()
    if directory is None:
        _error("no state directory: set XDG_STATE_HOME or HOME", EXIT_BAD_INPUT)
    return directory


def _attempt(action: Callable[[], T]) -> T:
    """Run ``action``; its BrokerError becomes one line and the matching exit code."""
    try:
        return action()
    except localbroker.BrokerFailed as exc:
        _error(str(exc), EXIT_TRANSPORT)
    except localbroker.BrokerError as exc:  # the extra is missing, one runs, the port is busy
        _error(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:
        _error(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}",
               EXIT_TRANSPORT)


@click.group()
def broker() -> None:
    """A local NATS broker with JetStream for development (extra relaybus[broker])."""


@broker.command()
@port_option
def start(port: int | None) -> None:
    """Start the broker in the background and print its URL."""
    directory = _directory()
    state = _attempt(lambda: localbroker.start(directory, port))
    click.echo(f"relaybus broker: started on {state.url} (pid {state.pid}, data "
               f"{state.data_dir}); commands without --url now use it")


@broker.command()
@port_option
def run(port: int | None) -> None:
    """Run the broker in the foreground until Ctrl-C or SIGTERM."""
    directory = _directory()
    status = _attempt(lambda: localbroker.run(directory, port))
    sys.exit(0 if status in (0, -2, -15) else EXIT_TRANSPORT)


@broker.command()
def stop() -> None:
    """Stop the broker started with `relaybus broker start`."""
    directory = _directory()
    state = _attempt(lambda: localbroker.stop(directory))
    if state is None:
        click.echo("relaybus broker: not running")
    else:
        click.echo(f"relaybus broker: stopped (was {state.url}, pid {state.pid})")


@broker.command()
@json_option
def status(as_json: bool) -> None:
    """Say whether the broker runs and where (exit 0 if it runs, 1 if not)."""
    directory = _directory()
    state = localbroker.read_state(directory)
    if as_json:
        click.echo(json.dumps({"running": state is not None, "state_dir": str(directory),
                               **(vars(state) if state is not None else {})}))
    elif state is None:
        click.echo(f"relaybus broker: not running (state in {directory})")
    else:
        click.echo(f"relaybus broker: running on {state.url} (pid {state.pid}, data "
                   f"{state.data_dir}, log {state.log})")
    sys.exit(0 if state is not None else EXIT_NOT_RUNNING)
