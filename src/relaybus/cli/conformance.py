"""``relaybus conformance``: check a server against the echo contract, or serve it."""

from __future__ import annotations

import asyncio
import json
import signal
import socket

import click

import relaybus
from relaybus import Target, loops
from relaybus.cli.common import fail, settings_from, url_option
from relaybus.contracts.conformance import NAMESPACE, WAIT, reference_server, run_checks


async def _check(url: str | None, topic: str) -> list[dict[str, object]]:
    async with await relaybus.connect(url) as bus:
        # One question first: when nobody listens (or answers), every check would fail for
        # that one reason; say it once instead.
        probe = bus.rpc_client(Target(topic=topic, namespace=NAMESPACE, version="1.0"),
                               timeout=WAIT)
        try:
            await probe.call({}, "whoami")
        except (relaybus.MessageUndeliverable, relaybus.MessagingTimeout):
            raise
        except relaybus.MessagingError:
            pass  # it answers; the checks say how well
        return [vars(r) for r in await run_checks(bus, topic)]


async def _serve(url: str | None, topic: str, server: str) -> None:
    async with await relaybus.connect(url) as bus:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with reference_server(bus, topic, server):
            click.echo(f"serving the conformance contract on {topic} as {server!r} "
                       f"({bus.url}); Ctrl-C stops", err=True)
            await stop.wait()


@click.command()
@url_option
@click.option("--topic", required=True, help="The topic the server under test listens on.")
@click.option("--serve", is_flag=True,
              help="Run the reference server instead of checking one.")
@click.option("--server", default=None, help="With --serve: the server name (default: host).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def conformance(ctx: click.Context, url: str | None, topic: str, serve: bool,
                server: str | None, as_json: bool) -> None:
    """Check that the server on TOPIC implements relaybus's echo contract.

    Exit codes: 0 every check passed, 1 a check failed, 2 bad input, 3 no answer, 4 nobody
    listens on TOPIC, 5 transport failure.
    """
    url = settings_from(ctx, url=url).url
    try:
        if serve:
            loops.run(_serve(url, topic, server or socket.gethostname()))
            return
        results = loops.run(_check(url, topic))
    except (relaybus.MessagingError, ValueError) as exc:
        lonely = isinstance(exc, relaybus.MessageUndeliverable)
        fail(exc, as_json, hint=f"start the server under test, or `relaybus conformance "
                                f"--serve --topic {topic}`" if lonely else None)
    passed = sum(1 for r in results if r["passed"])
    if as_json:
        click.echo(json.dumps({"results": results, "passed": passed,
                               "failed": len(results) - passed}, indent=2))
    else:
        for r in results:
            click.echo(f"{'PASS' if r['passed'] else 'FAIL'} {r['name']}: {r['detail']}")
        click.echo(f"{passed} passed, {len(results) - passed} failed")
    raise SystemExit(0 if passed == len(results) else 1)
