"""``relaybus call`` and ``relaybus cast``: invoke a method from the shell."""

from __future__ import annotations

from typing import Any

import click

import relaybus
from relaybus import Target
from relaybus.cli.common import (
    json_option,
    parse_arguments,
    parse_json_object,
    quiet_logs,
    rpc_hint,
    run,
    settings_from,
    show,
    url_option,
)


def _target_options(command: Any) -> Any:
    for decorator in reversed([
        click.argument("topic"),
        click.argument("method"),
        click.argument("pairs", nargs=-1, metavar="[KEY=VALUE]..."),
        click.option("--args", "args_json", default=None, help="Arguments as a JSON object."),
        click.option("--server", default=None, help="Send to this server only."),
        click.option("--version", "version", default=None, help="Interface version needed."),
        click.option("--namespace", default=None, help="Endpoint namespace."),
        click.option("--exchange", default=None, help="Exchange (default: control exchange)."),
        click.option("--context", "context_json", default=None,
                     help="Request context as a JSON object."),
        url_option, json_option,
    ]):
        command = decorator(command)
    return command


def _client(bus: relaybus.Bus, topic: str, server: str | None, version: str | None,
            namespace: str | None, exchange: str | None, fanout: bool,
            timeout: float) -> relaybus.RPCClient:
    target = Target(exchange=exchange, topic=topic, server=server, fanout=fanout,
                    namespace=namespace, version=version)
    return bus.rpc_client(target, timeout=timeout)


def _context(context_json: str | None) -> dict[str, Any]:
    context = parse_json_object("--context", context_json) if context_json else {}
    if not isinstance(context, dict):
        raise ValueError("--context must be a JSON object")
    return context


@click.command()
@_target_options
@click.option("--timeout", type=float, default=None, help="Seconds to wait for the reply.")
@click.pass_context
def call(ctx: click.Context, topic: str, method: str, pairs: tuple[str, ...],
         args_json: str | None, server: str | None, version: str | None,
         namespace: str | None, exchange: str | None, context_json: str | None,
         url: str | None, as_json: bool, timeout: float | None) -> None:
    """Call METHOD on a server of TOPIC and print the result.

    Exit codes: 0 done, 1 the server raised, 2 bad input, 3 timeout, 4 nobody listens on
    the topic, 5 transport failure.
    """
    settings = settings_from(ctx, url=url, timeout=timeout)
    quiet_logs(settings)

    async def go() -> Any:
        arguments = parse_arguments(pairs, args_json)
        async with await relaybus.connect(settings.url,
                                          control_exchange=settings.control_exchange) as bus:
            client = _client(bus, topic, server, version, namespace, exchange, False,
                             settings.timeout)
            return await client.call(_context(context_json), method, **arguments)

    show(run(go(), as_json, rpc_hint(settings.url, namespace)), as_json)


@click.command()
@_target_options
@click.option("--fanout", is_flag=True, help="Send to every server of the topic.")
@click.pass_context
def cast(ctx: click.Context, topic: str, method: str, pairs: tuple[str, ...],
         args_json: str | None, server: str | None, version: str | None,
         namespace: str | None, exchange: str | None, context_json: str | None,
         url: str | None, as_json: bool, fanout: bool) -> None:
    """Cast METHOD to TOPIC (one server, a named one, or all with --fanout).

    Exit codes: 0 sent, 2 bad input, 4 nobody listens on the topic, 5 transport failure.
    """
    settings = settings_from(ctx, url=url)
    quiet_logs(settings)

    async def go() -> None:
        arguments = parse_arguments(pairs, args_json)
        async with await relaybus.connect(settings.url,
                                          control_exchange=settings.control_exchange) as bus:
            client = _client(bus, topic, server, version, namespace, exchange, fanout,
                             settings.timeout)
            await client.cast(_context(context_json), method, **arguments)

    run(go(), as_json, rpc_hint(settings.url, namespace))
    if as_json:
        show("sent", as_json, key="status")
    else:
        click.echo(f"cast {method} to {topic}{'.' + server if server else ''}"
                   f"{' (fanout)' if fanout else ''}: sent")
