"""``relaybus ping``: which servers of a topic answer oslo.messaging's RPC ping, and how fast.

A server answers when its ping is on: ``relaybus serve --ping`` (or ``ping = true`` in the
settings), ``RPCServer(..., ping=True)``, or oslo.messaging's ``rpc_ping_enabled``.
``--server`` names each server to ask (repeat it); ``--all`` asks every server of the
topic with one fanout ping and lists the answers that arrive within ``--wait`` seconds
(:func:`relaybus.rpc.ping.ping_all`); with neither, one server of the topic answers,
whichever the broker hands the ping to.
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
    EXIT_REMOTE_ERROR,
    EXIT_UNDELIVERABLE,
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
from relaybus.rpc.ping import (
    DEFAULT_LIMIT,
    DEFAULT_WINDOW,
    PING_METHOD,
    PONG,
    Pong,
    check_window,
    ping_all,
)

DEFAULT_TIMEOUT = 5.0
PING_OFF = ("it answers, but its ping is off (relaybus serve --ping; oslo.messaging: "
            "rpc_ping_enabled = true)")
UNNAMED = "an oslo.messaging server (unnamed)"


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
                      error="NoSuchMethod", message=PING_OFF)
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


def _answer_of(topic: str, pong: Pong) -> dict[str, Any]:
    """One ``--all`` answer as the lines and JSON objects of ``--server`` show it."""
    answer: dict[str, Any] = {"topic": topic, "server": pong.server, "host": pong.host,
                              "pid": pong.pid, "ok": pong.ok, "ms": round(pong.elapsed * 1000, 2)}
    if pong.error is not None:
        no_method = isinstance(pong.error, relaybus.NoSuchMethod)
        answer.update(exit_code=exit_code_for(pong.error), error=type(pong.error).__name__,
                      message=PING_OFF if no_method else one_line(pong.error))
    else:
        answer["reply"] = pong.reply
        if not pong.ok:
            answer.update(exit_code=EXIT_REMOTE_ERROR, error="UnexpectedReply",
                          message=f"answered {pong.reply!r}")
    return answer


def _all_line(answer: dict[str, Any]) -> str:
    if answer["server"] is not None:
        who = f"{answer['topic']}.{answer['server']}"
        if answer["host"] is not None and answer["pid"] is not None:
            who += f" (pid {answer['pid']} on {answer['host']})"
    else:
        who = f"{answer['topic']}: " + (UNNAMED if answer["ok"] else "a server (unnamed)")
    if answer["ok"]:
        return f"{who}: pong in {answer['ms']:.1f} ms"
    return f"{who}: {answer['error']}: {answer['message']} ({answer['ms']:.1f} ms)"


async def _ping_all(bus: relaybus.Bus, topic: str, exchange: str | None, window: float,
                    limit: int) -> list[dict[str, Any]]:
    try:
        pongs = await ping_all(bus.driver, topic, exchange=exchange, window=window,
                               limit=limit)
    except relaybus.MessageUndeliverable as exc:
        return [{"topic": topic, "server": None, "ok": False,
                 "exit_code": EXIT_UNDELIVERABLE, "error": "MessageUndeliverable",
                 "message": one_line(exc)}]
    if not pongs:
        return [{"topic": topic, "server": None, "ok": False,
                 "exit_code": EXIT_UNDELIVERABLE, "error": "NoAnswer",
                 "message": f"no server answered within {window:g} s"}]
    return [_answer_of(topic, pong) for pong in pongs]


def _report_all(answers: list[dict[str, Any]], topic: str, window: float, limit: int,
                as_json: bool) -> None:
    for answer in answers:
        if as_json:
            click.echo(json.dumps({k: v for k, v in answer.items() if k != "exit_code"}))
        elif "ms" not in answer:  # nobody answered
            click.echo(f"{topic} (all servers): {answer['error']}: {answer['message']}",
                       err=True)
        else:
            click.echo(_all_line(answer), err=not answer["ok"])
    if as_json or "ms" not in answers[0]:
        return
    summary = f"{len(answers)} answered within {window:g} s"
    if len(answers) >= limit:
        summary += f" (stopped at --limit {limit}: more servers may be listening)"
    click.echo(summary)


def _check_options(servers: tuple[str, ...], every: bool, timeout: float | None,
                   wait: float | None, limit: int | None) -> None:
    if len(set(servers)) != len(servers):
        fail(ValueError("--server names a server twice"))
    if every and servers:
        fail(ValueError("--all asks every server: leave out --server"))
    if every and timeout is not None:
        fail(ValueError("--all waits --wait seconds for every answer: leave out --timeout"))
    if not every and (wait is not None or limit is not None):
        fail(ValueError("--wait and --limit go with --all"))
    if timeout is not None and timeout <= 0:
        fail(ValueError(f"--timeout must be a positive number of seconds, got {timeout:g}"))
    if every:
        try:
            check_window(DEFAULT_WINDOW if wait is None else wait,
                         DEFAULT_LIMIT if limit is None else limit)
        except ValueError as exc:
            fail(ValueError(str(exc).replace("the window", "--wait")
                            .replace("the limit", "--limit")))


@click.command()
@click.argument("topic")
@click.option("--server", "servers", multiple=True,
              help="A server to ping (repeat for several); default: any one of the topic.")
@click.option("--all", "every", is_flag=True,
              help="Ping every server of the topic at once (one fanout ping) and list who "
                   "answers within --wait.")
@click.option("--exchange", default=None, help="Exchange (default: control exchange).")
@click.option("--timeout", type=float, default=None,
              help=f"Seconds each server has to answer (default {DEFAULT_TIMEOUT:g}).")
@click.option("--wait", type=float, default=None,
              help=f"With --all: seconds to collect answers (default {DEFAULT_WINDOW:g}).")
@click.option("--limit", type=int, default=None,
              help=f"With --all: stop after this many answers (default {DEFAULT_LIMIT}).")
@url_option
@json_option
@click.pass_context
def ping(ctx: click.Context, topic: str, servers: tuple[str, ...], every: bool,
         exchange: str | None, timeout: float | None, wait: float | None, limit: int | None,
         url: str | None, as_json: bool) -> None:
    """Ping servers of TOPIC (oslo.messaging's oslo_rpc_server_ping) and time the answers.

    Servers answer when their ping is on (serve --ping, oslo's rpc_ping_enabled). One line
    per server asked; with --all, one line per server that answered within --wait (oslo
    servers do not say their name), then the count. Exit codes: 0 all answered, else the
    first failure's: 1 it answers but its ping is off, 2 bad input, 3 no answer in time,
    4 nobody listens (--all: nobody answered), 5 transport failure.
    """
    _check_options(servers, every, timeout, wait, limit)
    window = DEFAULT_WINDOW if wait is None else wait
    most = DEFAULT_LIMIT if limit is None else limit
    settings = settings_from(ctx, url=url)
    quiet_logs(settings)

    async def go() -> list[dict[str, Any]]:
        async with await relaybus.connect(settings.url,
                                          control_exchange=settings.control_exchange) as bus:
            if every:
                return await _ping_all(bus, topic, exchange, window, most)
            asked: list[str | None] = [*servers] or [None]
            return list(await asyncio.gather(
                *(_ping_one(bus, topic, server, exchange, timeout or DEFAULT_TIMEOUT)
                  for server in asked)))

    answers = run(go(), as_json)
    if every:
        _report_all(answers, topic, window, most, as_json)
    else:
        for answer in answers:
            if as_json:
                click.echo(json.dumps({k: v for k, v in answer.items() if k != "exit_code"}))
            else:
                click.echo(_line(answer), err=not answer["ok"])
    failed = [a for a in answers if not a["ok"]]
    if failed and not as_json and in_process(settings.url) \
            and failed[0].get("exit_code") == EXIT_UNDELIVERABLE:
        click.echo(f"({MEMORY_NOTE})", err=True)
    if failed:
        ctx.exit(failed[0].get("exit_code", EXIT_BAD_INPUT))
