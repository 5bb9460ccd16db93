"""Running the firehose gateway from the command line: the shared parts.

``relaybus firehose`` and ``relaybus demo --console`` both start a gateway, stop it on a
signal and turn the errors a user can fix into one line; this module holds what they share,
so that neither command module imports the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

import relaybus
from relaybus import loops
from relaybus.cli.common import EXIT_BAD_INPUT, EXIT_TRANSPORT, CommandError

BAD_ADDRESS = {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES}
GATEWAY_EXTRA = "the firehose needs the gateway extra: pip install 'relaybus[gateway]'"


def gateway_module() -> Any:
    """:mod:`relaybus.gateway`, or a click error naming the extra it needs."""
    try:
        import relaybus.gateway as gateway
    except ImportError as exc:  # starlette, uvicorn or aiomqtt missing
        raise CommandError(f"{GATEWAY_EXTRA} ({exc})", EXIT_BAD_INPUT) from exc
    return gateway


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT or SIGTERM while the block runs."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run(main: Callable[[], Any]) -> None:
    """Run ``main()`` and turn the errors a user can fix into one clear line."""
    gateway = gateway_module()
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    refused = gateway.mqtt.MqttRefused
    try:
        loops.run(main())
    except* refused as group:  # the MQTT broker said no (credentials, not authorised)
        raise CommandError(str(group.exceptions[0]), EXIT_TRANSPORT) from None
    except* relaybus.MessagingError as group:
        raise CommandError.of(group.exceptions[0]) from None
    except* OSError as group:  # e.g. the HTTP port is taken (bad input), or unreachable
        exc = group.exceptions[0]
        mine = isinstance(exc, OSError) and exc.errno in BAD_ADDRESS
        raise CommandError(f"cannot start the gateway: {exc}",
                           EXIT_BAD_INPUT if mine else EXIT_TRANSPORT) from None


def announce(gateway: Any, bus: relaybus.Bus, extra: str = "") -> None:
    """Print where the gateway serves and what it listens to."""
    mqtt = f", mqtt {gateway.bridge.url}" if gateway.bridge else ""
    click.echo(f"relaybus firehose: console {gateway.url} (bus {bus.url.masked()}{mqtt}, "
               f"topics {', '.join(gateway.options.topics)}, pool {gateway.options.pool})"
               f"{extra}")
    sys.stdout.flush()
