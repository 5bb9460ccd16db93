"""``relaybus ping``: which servers of a topic answer oslo.messaging's RPC ping, and how fast.

A server answers when its ping is on: ``relaybus serve --ping`` (or ``ping = true`` in the
settings), ``RPCServer(..., ping=True)``, or oslo.messaging's ``rpc_ping_enabled``. No
message broker (nor oslo.messaging) lists the servers of a topic, so ``--server`` names
each one to ask (repeat it); without it, one server of the topic answers, whichever the
broker hands the ping to.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import click

import relaybus
from relaybus import Target
from relaybus.cli.common import (
    EXIT_BAD_INPUT,
    MEMORY_NOTE,
    exit_code_for,
    fail,
    in_process,
    json_option,
    one_line,
    quiet_logs,
    run,
    settings_from,
    url_option,
)
from relaybus.rpc.ping import PING_METHOD, PONG

DEFAULT_TIMEOUT = 5.0


async def _ping_one(bus: relaybus.Bus, topic: str, server: str | None, exchange: str | None,
                    timeout: float) -> dict[str, Any]:
    client = bus.rpc_client(Target(exchange=exchange, topic=topic, server=server,
                                   version="1.0"), timeout=timeout)
    started = time.perf_counter()
    answer: dict[str, Any] = {"topic": topic, "server": server}
    try:
        reply = await client.call({}, PING_METHOD)
    except relaybus.NoSuchMethod:
        answer.update(ok=False, exit_code=exit_code_for(relaybus.NoSuchMethod(PING_METHOD)),
                      error="NoSuchMethod", message="it answers, but its ping is off "
                      "(relaybus serve --ping; oslo.messaging: rpc_ping_enabled = true)")
        return answer
    except Exception as exc:
        if not isinstance(exc, (relaybus.MessagingError, relaybus.RemoteError)) \
                and not hasattr(exc, "remote_traceback"):
            raise
        answer.update(ok=False, exit_code=exit_code_for(exc), error=type(exc).__name__,
                      message=one_line(exc))
        return answer
    elapsed = time.perf_counter() - started
    answer.update(ok=reply == PONG, ms=round(elapsed * 1000, 2), reply=reply)
    if reply != PONG:
        answer.update(exit_code=1, error="UnexpectedReply", message=f"answered {reply!r}")
    return answer


def _line(answer: dict[str, Any]) -> str:
    who = f"{answer['topic']}.{answer['server']}" if answer["server"] else \
        f"{answer['topic']} (any server)"
    if answer["ok"]:
        return f"{who}: pong in {answer['ms']:.1f} ms"
    return f"{who}: {answer['error']}: {answer['message']}"


@click.command()
@click.argument("topic")
@click.option("--server", "servers", multiple=True,
              help="A server to ping (repeat for several); default: any one of the topic.")
@click.option("--exchange", default=None, help="Exchange (default: control exchange).")
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds each server has to answer.")
@url_option
@json_option
@click.pass_context
def ping(ctx: click.Context, topic: str, servers: tuple[str, ...], exchange: str | None,
         timeout: float, url: str | None, as_json: bool) -> None:
    """Ping servers of TOPIC (oslo.messaging's oslo_rpc_server_ping) and time the answers.

    Servers answer when their ping is on (serve --ping, oslo's rpc_ping_enabled). One line
    per server asked. Exit codes: 0 all answered, else the first failure's: 1 it answers
    but its ping is off, 2 bad input, 3 no answer in time, 4 nobody listens, 5 transport
    failure.
    """
    if timeout <= 0:
        fail(ValueError(f"--timeout must be a positive number of seconds, got {timeout:g}"))
    if len(set(servers)) != len(servers):
        fail(ValueError("--server names a server twice"))
    settings = settings_from(ctx, url=url)
    quiet_logs(settings)

    async def go() -> list[dict[str, Any]]:
        async with await relaybus.connect(settings.url,
                                          control_exchange=settings.control_exchange) as bus:
            asked: list[str | None] = [*servers] or [None]
            return list(await asyncio.gather(
                *(_ping_one(bus, topic, server, exchange, timeout) for server in asked)))

    answers = run(go(), as_json)
    for answer in answers:
        if as_json:
            click.echo(json.dumps({k: v for k, v in answer.items() if k != "exit_code"}))
        else:
            click.echo(_line(answer), err=not answer["ok"])
    failed = [a for a in answers if not a["ok"]]
    if failed and not as_json and in_process(settings.url) \
            and failed[0]["error"] == "MessageUndeliverable":
        click.echo(f"({MEMORY_NOTE})", err=True)
    if failed:
        ctx.exit(failed[0].get("exit_code", EXIT_BAD_INPUT))
