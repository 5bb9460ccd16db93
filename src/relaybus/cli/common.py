"""What every bus command shares: exit codes, one-line errors, argument parsing, output."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, NoReturn

import click

import relaybus
from relaybus import loops
from relaybus.cli import logs
from relaybus.cli.settings import Settings, SettingsError, resolve

EXIT_REMOTE_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_TIMEOUT = 3
EXIT_UNDELIVERABLE = 4
EXIT_TRANSPORT = 5

url_option = click.option("--url", default=None,
                          help="Transport URL (else $RELAYBUS_URL, the config file, a running "
                               "`relaybus broker`, memory://).")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Machine-readable output (one JSON document per line).")


MEMORY_NOTE = ("memory:// lives inside this process, so no other process can reach it; "
               "run `relaybus broker start` (pip install 'relaybus[broker]') and commands "
               "without --url use that broker, or pass --url rabbit://... or nats://...")


def in_process(url: str) -> bool:
    """Whether ``url`` is the embedded transport, which no other process can reach."""
    return relaybus.parse_url(url).scheme == "memory"


def exit_code_for(exc: BaseException) -> int:
    """The exit code that tells this failure apart from the others."""
    if hasattr(exc, "remote_traceback") or isinstance(exc, (relaybus.RemoteError,
                                                            relaybus.NoSuchMethod,
                                                            relaybus.UnsupportedVersion)):
        return EXIT_REMOTE_ERROR
    if isinstance(exc, relaybus.MessagingTimeout):
        return EXIT_TIMEOUT
    if isinstance(exc, relaybus.MessageUndeliverable):
        return EXIT_UNDELIVERABLE
    if isinstance(exc, relaybus.TransportError):
        return EXIT_TRANSPORT
    return EXIT_BAD_INPUT


class CommandError(click.ClickException):
    """A failure the user can act on: one line ``error: ...`` and an exit code from above."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        setattr(self, "exit_code", exit_code)  # noqa: B010 - click declares it a ClassVar

    @classmethod
    def of(cls, exc: BaseException, prefix: str = "") -> CommandError:
        """The one line and exit code that report ``exc``."""
        return cls(f"{prefix}{type(exc).__name__}: {one_line(exc)}", exit_code_for(exc))

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def seconds(value: float) -> str:
    """A duration as people write it: ``1``, ``0.5``, ``12``, ``0.05``."""
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.1f}".removesuffix(".0") if value >= 0.1 else f"{value:.1g}"


def one_line(exc: BaseException) -> str:
    """The first line of what ``exc`` says (the remote side's text for a remote error),
    with durations rounded (``Timed out after 0.9956106820000059 s`` says ``1 s``)."""
    text = getattr(exc, "remote_message", None) or str(exc)
    if not text.strip():
        cause = exc.__cause__ or exc.__context__
        return one_line(cause) if cause is not None else type(exc).__name__
    return re.sub(r"\b(\d+\.\d+) s\b", lambda m: f"{seconds(float(m[1]))} s",
                  text.splitlines()[0])


def fail(exc: BaseException, as_json: bool = False, hint: str | None = None) -> NoReturn:
    """Report ``exc`` in one line (or one JSON object) and exit with its code."""
    code = exit_code_for(exc)
    name = type(exc).__name__.removesuffix("_Remote")
    message = one_line(exc)
    if hint:
        message = f"{message} ({hint})"
    if as_json:
        click.echo(json.dumps({"error": {"type": name, "message": message, "exit_code": code}}))
    else:
        click.echo(f"error: {name}: {message}", err=True)
    sys.exit(code)


def settings_from(ctx: click.Context, **flags: Any) -> Settings:
    """Resolve settings for a command (flags over environment over config file)."""
    try:
        return resolve(flags, (ctx.find_root().obj or {}).get("config"))
    except SettingsError as exc:
        fail(exc)


def quiet_logs(settings: Settings) -> None:
    """For a command that ends with one line: relaybus logs errors only, unless told.

    A refused login, say, is the command's one error line; the driver's warning about the
    same closed connection would be a second.
    """
    level = "error" if settings.sources["log_level"] == "default" else settings.log_level
    logs.configure(level, settings.log_format)


def rpc_hint(url: str, namespace: str | None) -> Callable[[BaseException], str | None]:
    """What to add to a call's or cast's error line: why nobody may listen, or that the
    service's endpoints may need ``--namespace``."""
    def hint(exc: BaseException) -> str | None:
        if isinstance(exc, relaybus.MessageUndeliverable) and in_process(url):
            return MEMORY_NOTE
        if isinstance(exc, relaybus.UnsupportedVersion) and namespace is None \
                and "no endpoint in namespace None" in one_line(exc):
            return "its endpoints have a namespace: pass --namespace NAME"
        return None
    return hint


def run(coro: Coroutine[Any, Any, Any], as_json: bool = False,
        hint: Callable[[BaseException], str | None] | None = None,
        loop: loops.Loop | None = None) -> Any:
    """Run a command's coroutine; relaybus and input errors become one line and an exit.

    It runs on ``loop``, by default the one :func:`relaybus.loops.choose` picks (uvloop where
    installed). ``hint(exc)`` may add a few words to the line (see :func:`rpc_hint`).
    """
    try:
        return loops.run(coro, loop=loop)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if hasattr(exc, "remote_traceback") or isinstance(
                exc, (relaybus.MessagingError, ValueError, TypeError, LookupError)):
            fail(exc, as_json, hint=hint(exc) if hint is not None else None)
        raise


def parse_arguments(pairs: tuple[str, ...], args_json: str | None) -> dict[str, Any]:
    """``key=value`` pairs (values read as JSON when they parse, else text) over --args."""
    arguments: dict[str, Any] = {}
    if args_json is not None:
        try:
            arguments = json.loads(args_json)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--args is not valid JSON: {exc}") from None
        if not isinstance(arguments, dict):
            raise ValueError("--args must be a JSON object of argument names to values")
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"argument {pair!r} is not key=value with a valid name")
        try:
            arguments[key] = json.loads(text)
        except json.JSONDecodeError:
            arguments[key] = text
    return arguments


def parse_json_object(option: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{option} is not valid JSON: {exc}") from None


def show(value: Any, as_json: bool, key: str = "result") -> None:
    """Print a result: pretty for people, one JSON object for scripts."""
    if as_json:
        click.echo(json.dumps({key: value}, ensure_ascii=False))
    else:
        from rich.console import Console
        from rich.pretty import Pretty

        Console().print(Pretty(value))


def connect_options(settings: Settings) -> Mapping[str, Any]:
    return {"control_exchange": settings.control_exchange}
