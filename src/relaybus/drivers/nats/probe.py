"""Whether the servers of a NATS URL speak NATS at all.

A NATS server greets every new connection with an ``INFO`` line before the client says
anything. A URL pointing at another service's port (RabbitMQ's 5672, a database, a port
that accepts and stays silent) therefore shows itself by saying nothing, or something
else: nats-py then waits its whole ``connect_timeout`` for each attempt and reports an
empty ``TimeoutError``. :func:`not_nats` opens one plain TCP connection per server, reads
the first line within a short bound, and says why no server answered as NATS, if none
did; :class:`~relaybus.drivers.nats.connection.Connection` runs it only when connecting
takes longer than :data:`PROBE_AFTER`, so a healthy connect costs nothing extra.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

#: seconds a connect may take before the servers are probed
PROBE_AFTER = 1.0
#: seconds a server has to send its INFO line before it is judged not to be NATS
INFO_TIMEOUT = 2.0

_NATS, _UNREACHABLE = "nats", "unreachable"


async def _greeting(server: str, connect_timeout: float, info_timeout: float) -> str:
    """``nats``, ``unreachable``, or why the server at ``server`` is not a NATS server."""
    parts = urlsplit(server)
    address = parts.netloc.rsplit("@", 1)[-1]
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    except (OSError, TimeoutError):
        return _UNREACHABLE
    try:
        async with asyncio.timeout(info_timeout):
            first = await reader.read(64)
            while 0 < len(first) < 4 and b"INFO".startswith(first):
                more = await reader.read(64)
                if not more:
                    break
                first += more
    except TimeoutError:
        return (f"{address} did not answer as a NATS server "
                f"(no INFO within {info_timeout:g} s)")
    except OSError:
        return _UNREACHABLE
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if first.startswith(b"INFO"):
        return _NATS
    if not first:
        return f"{address} closed the connection without the INFO a NATS server sends"
    said = first.split(b"\r\n")[0][:40]
    return f"{address} did not answer as a NATS server (it sent {said!r}, not INFO)"


async def not_nats(servers: list[str], connect_timeout: float,
                   info_timeout: float = INFO_TIMEOUT) -> str | None:
    """Why none of ``servers`` is a NATS server, or None.

    None when one of them greets as NATS, or when none can be reached at all (the
    connection's own error says that better); WebSocket URLs are not probed.
    """
    plain = [s for s in servers if urlsplit(s).scheme in ("nats", "tls")]
    if not plain:
        return None
    verdicts = await asyncio.gather(*(_greeting(s, connect_timeout, info_timeout)
                                      for s in plain))
    if _NATS in verdicts:
        return None
    reasons = [v for v in verdicts if v != _UNREACHABLE]
    return "; ".join(reasons) if reasons else None
