"""``relaybus dlq``: look at, replay and purge the dead letters of a dead-letter topic."""

from __future__ import annotations

import datetime
import json
import re
import sys
from typing import Any

import click

import relaybus
from relaybus.cli.common import (
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
from relaybus.cli.settings import Settings
from relaybus.delivery.store import DeadLetterStore, Letter
from relaybus.target import Target

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
PROGRESS_FROM = 10  # letters: a replay of fewer ends before a bar would help


def parse_duration(text: str) -> datetime.timedelta:
    """``90s``, ``15m``, ``2h``, ``7d``, ``1w`` (or plain seconds) as a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if match is None:
        raise ValueError(f"--older-than {text!r} is not a duration like 90s, 15m, 2h or 7d")
    return datetime.timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])


def age(letter: Letter, now: datetime.datetime) -> str:
    """How long ago a letter died, in its largest unit (``42s``, ``5m``, ``3h``, ``2d``)."""
    died = letter.died_at()
    if died is None:
        return "?"
    seconds = max(0.0, (now - died).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _row(letter: Letter, now: datetime.datetime) -> dict[str, Any]:
    reason = letter.reason
    return {"id": letter.id, "event": letter.event_type,
            "kind": reason.kind if reason else "notification",
            "reason": f"{reason.error_type}: {reason.error_message}" if reason else "",
            "attempts": reason.attempts if reason else None, "age": age(letter, now),
            "died": reason.last_failure if reason else None}


def _store(bus: relaybus.Bus, target: str) -> DeadLetterStore:
    return DeadLetterStore(bus.driver, target)


def _note_memory(url: str, as_json: bool) -> None:
    if in_process(url) and not as_json:
        click.echo(f"note: {MEMORY_NOTE}", err=True)


@click.group()
def dlq() -> None:
    """Dead letters: list, show, replay and purge what a dead-letter topic holds."""


TARGET_HELP = ("TARGET is the dead-letter topic; without it, the dead_letter_topic setting "
               "($RELAYBUS_DEAD_LETTER_TOPIC or relaybus.toml) names it.")


def _target(settings: Settings, given: str | None, as_json: bool) -> str:
    if given:
        try:
            Target(topic=given)
        except relaybus.InvalidTarget as exc:
            fail(exc, as_json)
    target = given or settings.dead_letter_topic
    if not target:
        fail(ValueError("no dead-letter topic: give TARGET, or set dead_letter_topic "
                        "($RELAYBUS_DEAD_LETTER_TOPIC or relaybus.toml)"), as_json)
    return str(target)


@dlq.command("list", epilog=TARGET_HELP)
@click.argument("target", required=False)
@url_option
@json_option
@click.pass_context
def list_letters(ctx: click.Context, target: str | None, url: str | None,
                 as_json: bool) -> None:
    """List the dead letters of dead-letter topic TARGET, oldest first."""
    settings = settings_from(ctx, url=url)
    quiet_logs(settings)
    target = _target(settings, target, as_json)

    async def go() -> list[Letter]:
        async with await relaybus.connect(settings.url,
                                          control_exchange=settings.control_exchange) as bus:
            return await _store(bus, target).letters()

    letters = run(go(), as_json)
    now = datetime.datetime.now(datetime.UTC)
    rows = [_row(letter, now) for letter in letters]
    if as_json:
        click.echo(json.dumps({"target": target, "letters": rows}, ensure_ascii=False))
        return
    _note_memory(settings.url, as_json)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} dead letter(s) in {target}", title_justify="left")
    for column in ("id", "event or method", "reason", "attempts", "age"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["id"], row["event"], row["reason"],
                      "" if row["attempts"] is None else str(row["attempts"]), row["age"])
    Console().print(table)


@dlq.command("show", epilog="ID alone is looked for in the dead_letter_topic setting "
             "($RELAYBUS_DEAD_LETTER_TOPIC or relaybus.toml); TARGET/ID or --target name "
             "another topic.")
@click.argument("letter_ref", metavar="[TARGET/]ID")
@click.option("--target", "-t", "target", default=None, metavar="TARGET",
              help="The dead-letter topic to look in.")
@url_option
@json_option
@click.pass_context
def show_letter(ctx: click.Context, letter_ref: str, target: str | None, url: str | None,
                as_json: bool) -> None:
    """Show dead letter ID: its reason, payload and context."""
    in_ref, _, letter_id = letter_ref.rpartition("/")
    if not letter_id:
        fail(ValueError(f"{letter_ref!r} names no letter id (e.g. orders_dlq/{'0' * 8}...)"),
             as_json)
    if in_ref and target and in_ref != target:
        fail(ValueError(f"{letter_ref!r} and --target {target} name two topics"), as_json)
    settings = settings_from(ctx, url=url)
    quiet_logs(settings)
    target = _target(settings, in_ref or target, as_json)

    async def go() -> Letter | None:
        async with await relaybus.connect(settings.url,
                                          control_exchange=settings.control_exchange) as bus:
            return await _store(bus, target).find(letter_id)

    letter = run(go(), as_json)
    if letter is None:
        fail(LookupError(f"no dead letter {letter_id} in {target}"), as_json)
    if as_json:
        click.echo(json.dumps({"letter": letter.to_json()}, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.pretty import Pretty

    Console().print(Pretty(letter.to_json()))


@dlq.command("replay", epilog=TARGET_HELP)
@click.argument("target", required=False)
@click.option("--id", "ids", multiple=True, help="A letter to replay (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Replay every letter.")
@click.option("--to", "to", default=None, metavar="TOPIC",
              help="Send them to this topic instead of the one each came from.")
@url_option
@json_option
@click.pass_context
def replay(ctx: click.Context, target: str | None, ids: tuple[str, ...], everything: bool,
           to: str | None, url: str | None, as_json: bool) -> None:
    """Send dead letters of TARGET back through the normal path.

    A letter leaves TARGET only once the broker took its replay; one whose replay fails
    stays, and the command exits non-zero saying why.
    """
    settings = settings_from(ctx, url=url)
    quiet_logs(settings)
    target = _target(settings, target, as_json)
    if bool(ids) == everything:
        fail(ValueError("give --id ID (repeatable) or --all"), as_json)
    chosen = None if everything else set(ids)

    async def go() -> tuple[list[Letter], list[tuple[Letter, Exception]]]:
        async with await relaybus.connect(settings.url,
                                          control_exchange=settings.control_exchange) as bus:
            store = _store(bus, target)
            total = len(chosen) if chosen is not None else len(await store.letters())
            if as_json or total < PROGRESS_FROM:
                return await store.replay(chosen, to)
            from rich.progress import Progress

            with Progress(transient=True) as progress:
                task = progress.add_task(f"replaying {target}", total=total)
                return await store.replay(chosen, to,
                                          progress=lambda _: progress.advance(task))

    replayed, failed = run(go(), as_json)
    missing = sorted(chosen - {letter.id for letter in replayed}
                     - {letter.id for letter, _ in failed}) if chosen else []
    if as_json:
        click.echo(json.dumps({
            "replayed": [letter.id for letter in replayed], "missing": missing,
            "failed": [{"id": letter.id, "error": f"{type(exc).__name__}: {one_line(exc)}"}
                       for letter, exc in failed]}))
    else:
        click.echo(f"replayed {len(replayed)} letter(s) from {target}"
                   + (f" to {to}" if to else ""))
        for letter_id in missing:
            click.echo(f"error: no dead letter {letter_id} in {target}", err=True)
        for letter, exc in failed:
            click.echo(f"error: {letter.id} stays in {target}: {type(exc).__name__}: "
                       f"{one_line(exc)}", err=True)
    if failed:
        sys.exit(exit_code_for(failed[0][1]))
    if missing:
        sys.exit(exit_code_for(LookupError()))


@dlq.command("purge", epilog=TARGET_HELP)
@click.argument("target", required=False)
@click.option("--older-than", "older_than", required=True, metavar="DURATION",
              help="Remove letters that died longer ago than this (90s, 15m, 2h, 7d).")
@url_option
@json_option
@click.pass_context
def purge(ctx: click.Context, target: str | None, older_than: str, url: str | None,
          as_json: bool) -> None:
    """Remove the dead letters of TARGET that died longer ago than --older-than."""
    settings = settings_from(ctx, url=url)
    quiet_logs(settings)
    target = _target(settings, target, as_json)
    try:
        cutoff = parse_duration(older_than)
    except ValueError as exc:
        fail(exc, as_json)

    async def go() -> list[Letter]:
        async with await relaybus.connect(settings.url,
                                          control_exchange=settings.control_exchange) as bus:
            return await _store(bus, target).purge(cutoff)

    removed = run(go(), as_json)
    if as_json:
        click.echo(json.dumps({"purged": [letter.id for letter in removed]}))
    else:
        click.echo(f"purged {len(removed)} letter(s) from {target}")
