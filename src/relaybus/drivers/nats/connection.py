"""The NATS connection of one bus: connecting, reconnecting with backoff, and the error boundary.

nats-py keeps the connection and restores core subscriptions after a reconnect; this module
chooses when and where it reconnects (capped exponential backoff with jitter, fewest-failed
server first), logs connection changes once each, tells the driver's consumers that a
reconnect happened (pull requests do not survive one), and maps every nats-py exception
to relaybus's tree:

=================================================  =====================================
raised by nats-py                                  raised to relaybus users
=================================================  =====================================
``Authorization Violation`` while connecting       AuthenticationFailure
no server reachable, stale or lost connection,     ConnectionFailure
outbound buffer full while reconnecting, OSError,
TLS errors, timeouts, JetStream not answering
JetStream API errors (``APIError``)                TransportError (with the server's
                                                   description and codes)
anything else from nats-py                         TransportError
=================================================  =====================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from relaybus import telemetry
from relaybus.drivers.nats import probe
from relaybus.drivers.nats.options import NatsOptions, ServerList
from relaybus.drivers.nats.slow_consumers import SlowConsumerReport
from relaybus.errors import (
    AuthenticationFailure,
    ConnectionFailure,
    MessagingError,
    TransportError,
)
from relaybus.transport.tasks import TaskOwner

LOG = logging.getLogger(__name__)

_AUTH_MARKERS = ("authorization violation", "authentication", "user authentication expired")
_CONNECTION_ERRORS = (
    nats.errors.NoServersError, nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError, nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError, nats.errors.ConnectionDrainingError,
    nats.errors.FlushTimeoutError, nats.errors.UnexpectedEOF,
    nats.errors.SecureConnRequiredError, nats.errors.SecureConnWantedError,
    nats.errors.SecureConnFailedError, nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError, OSError, TimeoutError,
)


_FATAL_WHILE_OPENING = (ssl.SSLError, nats.errors.SecureConnRequiredError,
                        nats.errors.SecureConnWantedError, nats.errors.SecureConnFailedError)


class _Abort(Exception):
    """Raised from nats-py's error callback to end its connect loop on a fatal error."""


class _NotNats(Exception):
    """No server of the URL greeted as NATS (the message says what they did instead)."""


def is_auth_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` is the server refusing the credentials."""
    if isinstance(exc, nats.errors.AuthorizationError):
        return True
    return isinstance(exc, nats.errors.Error) and any(m in str(exc).lower()
                                                      for m in _AUTH_MARKERS)


def translate(exc: BaseException, where: str = "") -> MessagingError:
    """The relaybus error for a nats-py (or socket) one; raise it ``from exc``."""
    prefix = f"{where}: " if where else ""
    if isinstance(exc, MessagingError):
        return exc
    if is_auth_error(exc):
        return AuthenticationFailure(f"{prefix}the NATS server refused the credentials")
    if isinstance(exc, nats.js.errors.ServiceUnavailableError):
        return ConnectionFailure(f"{prefix}JetStream is not available")
    if isinstance(exc, nats.js.errors.APIError):
        return TransportError(f"{prefix}JetStream refused: {exc.description} "
                              f"(code {exc.code}, error code {exc.err_code})")
    if isinstance(exc, _CONNECTION_ERRORS):
        return ConnectionFailure(f"{prefix}{type(exc).__name__}: {exc}".rstrip(": "))
    return TransportError(f"{prefix}{type(exc).__name__}: {exc}".rstrip(": "))


@contextlib.contextmanager
def translated(where: str) -> Iterator[None]:
    """Re-raise nats-py and socket errors of the block as relaybus errors."""
    try:
        yield
    except MessagingError:
        raise
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise translate(exc, where) from exc


async def round_trip(client: Client) -> None:
    """Return once the NATS server has processed everything this client sent so far.

    Listeners call this so that a subscription exists on the server when ``listen``
    returns. nats-py's own ``flush()`` does not promise that: it writes its PING straight
    to the socket while SUB and PUB commands may still wait in its pending buffer for the
    flusher task, so the PONG can come back before the server has seen the SUB (a call
    made right after then meets "no responders"). Handing the buffer to the socket first
    restores the order; ``_flush_pending`` is the only way nats-py offers to do that.
    """
    flush_pending = getattr(client, "_flush_pending", None)
    if flush_pending is not None:
        await flush_pending(force_flush=True)
    await client.flush()


class Connection:
    """One nats-py client, with relaybus's reconnect policy and logging.

    Args:
        servers: the URLs and credentials to use.
        options: the driver's options.
        url_text: the masked transport URL, for messages.
    """

    def __init__(self, servers: ServerList, options: NatsOptions, url_text: str,
                 tasks: TaskOwner | None = None) -> None:
        #: the driver's task owner; the consumers on this connection start tasks there
        self.tasks = tasks if tasks is not None else TaskOwner("relaybus[nats]")
        self._servers = servers
        self._options = options
        self._url_text = url_text
        self._client: Client | None = None
        self._opening = False
        self._opening_errors: list[BaseException] = []
        self._closing = False
        self._disconnected_logged = False
        self.on_reconnect: set[Callable[[], None]] = set()
        self.on_lost: set[Callable[[BaseException], None]] = set()
        self.name = options.name or f"relaybus:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: slow-consumer drops by consumer, logged once per interval (not per message)
        self.slow_consumers = SlowConsumerReport(url_text)

    @property
    def client(self) -> Client:
        """The connected client; raises TransportError once closed."""
        if self._client is None or self._closing:
            raise TransportError("the nats transport is closed")
        return self._client

    def problem(self) -> str | None:
        """Why messages cannot flow now (see ``Driver.connection_problem``), or None."""
        client = self._client
        if client is None:
            return "not connected yet"
        if self._closing:
            return "the transport is closed"
        if client.is_closed:
            return "gave up reconnecting: no server answered"
        if not client.is_connected:
            return "broker connection lost; reconnecting"
        return None

    async def open(self) -> None:
        """Connect to the first server that answers.

        Every server of the URL is tried twice, ``reconnect_delay`` apart, before
        giving up; once connected, reconnects follow ``max_reconnect_attempts``.

        Raises:
            AuthenticationFailure: the server refused the credentials.
            ConnectionFailure: no server could be reached, or none answered as a NATS
                server (within ``probe.PROBE_AFTER + probe.INFO_TIMEOUT`` seconds, not
                ``connect_timeout`` per attempt).
        """
        opts = self._options
        client = Client()
        kwargs: dict[str, Any] = {
            "servers": self._servers.servers, "name": self.name,
            "connect_timeout": opts.connect_timeout,
            "reconnect_time_wait": opts.reconnect_delay,
            "max_reconnect_attempts": 1,  # the first connect: each server twice
            "ping_interval": opts.ping_interval, "max_outstanding_pings": 2,
            "inbox_prefix": opts.inbox_prefix,
            "dont_randomize": True,  # hosts are tried in the URL's order, as oslo does
            "error_cb": self._on_error, "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected, "closed_cb": self._on_closed,
            "reconnect_to_server_handler": self._choose_server,
        }
        if self._servers.user is not None:
            kwargs["user"], kwargs["password"] = self._servers.user, self._servers.password
        if self._servers.token is not None:
            kwargs["token"] = self._servers.token
        if opts.creds_file:
            kwargs["user_credentials"] = opts.creds_file
        if opts.nkeys_seed_file:
            kwargs["nkeys_seed"] = opts.nkeys_seed_file
        context = opts.ssl_context(self._url_text)
        if context is not None:
            kwargs["tls"] = context
            if opts.tls_hostname:
                kwargs["tls_hostname"] = opts.tls_hostname
        self._opening = True
        try:
            await self._connect(client, kwargs)
        except _NotNats as exc:
            self._opening = False
            self._opening_errors = []
            await _quietly_close(client, timeout=0.5)
            raise ConnectionFailure(f"cannot connect to NATS at {self._url_text}: "
                                    f"{exc}") from None
        except (_Abort, nats.errors.Error, OSError, TimeoutError) as exc:
            self._opening = False
            await _quietly_close(client, timeout=0.5)
            errors = self._opening_errors + ([] if isinstance(exc, _Abort) else [exc])
            self._opening_errors = []
            refusal = next((e for e in errors if is_auth_error(e)), None)
            if refusal is not None:
                raise AuthenticationFailure(
                    f"the NATS server at {self._url_text} refused the credentials") from refusal
            cause = errors[0]
            if any("expecting INFO" in str(e) for e in errors):  # something else answered
                reason = await probe.not_nats(self._servers.servers, opts.connect_timeout)
                if reason is not None:
                    raise ConnectionFailure(f"cannot connect to NATS at {self._url_text}: "
                                            f"{reason}") from None
            raise ConnectionFailure(f"cannot connect to NATS at {self._url_text}: "
                                    f"{type(cause).__name__}: {cause}") from cause
        self._opening = False
        client.options["max_reconnect_attempts"] = opts.max_reconnect_attempts
        self._opening_errors = []
        self._client = client

    async def _connect(self, client: Client, kwargs: dict[str, Any]) -> None:
        """``client.connect``; if it is slow, check that the servers speak NATS at all.

        A port that accepts but is not NATS (RabbitMQ's, a silent one) would otherwise
        cost ``connect_timeout`` per attempt and end in an empty TimeoutError.

        Raises:
            _NotNats: no server greeted with INFO; the message says what they did.
        """
        connecting: asyncio.Future[Any] = asyncio.ensure_future(client.connect(**kwargs))
        probing: asyncio.Future[Any] | None = None
        try:
            done, _ = await asyncio.wait({connecting}, timeout=probe.PROBE_AFTER)
            if not done:
                probing = asyncio.ensure_future(probe.not_nats(
                    self._servers.servers, self._options.connect_timeout))
                done, _ = await asyncio.wait({connecting, probing},
                                             return_when=asyncio.FIRST_COMPLETED)
                if connecting not in done:
                    reason = probing.result()
                    if reason is not None:
                        raise _NotNats(reason)
            await connecting
        finally:
            for task in (connecting, probing):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    def _choose_server(self, servers: list[Any], info: dict[str, Any]) -> tuple[Any, float]:
        """nats-py's reconnect hook: the least-failed server, after a jittered backoff."""
        server = min(servers, key=lambda s: s.reconnects)
        base = min(self._options.reconnect_delay_max,
                   self._options.reconnect_delay * 2 ** min(server.reconnects, 16))
        return server, base / 2 + random.uniform(0, base / 2)

    async def _on_error(self, exc: Exception) -> None:
        if self._opening:  # remember why, for open() to report
            self._opening_errors.append(exc)
            if is_auth_error(exc) or isinstance(exc, _FATAL_WHILE_OPENING):
                # retrying cannot help; and nats-py's clean-up after a failed TLS
                # handshake never returns, so end its connect loop here
                raise _Abort from exc
            return
        if isinstance(exc, nats.errors.SlowConsumerError):
            self.slow_consumers.record(exc)  # one call per dropped message: count, log rarely
            return
        if self._client is None:
            return
        if isinstance(exc, (OSError, nats.errors.UnexpectedEOF)):
            LOG.debug("NATS connection attempt failed: %s", exc)
        else:
            LOG.warning("NATS reported: %s: %s", type(exc).__name__, exc)

    async def _on_disconnected(self) -> None:
        if self._client is not None and not self._closing and not self._disconnected_logged:
            self._disconnected_logged = True
            LOG.warning("lost the connection to NATS (%s); reconnecting", self._url_text)

    async def _on_reconnected(self) -> None:
        self._disconnected_logged = False
        client = self._client
        LOG.warning("reconnected to NATS at %s",
                    client.connected_url.netloc if client and client.connected_url else "?")
        telemetry.count_reconnect("nats")
        for callback in list(self.on_reconnect):
            callback()

    async def _on_closed(self) -> None:
        if self._client is None or self._closing:
            return
        exc = ConnectionFailure(f"the connection to NATS at {self._url_text} is gone for "
                                "good (no server answered)")
        LOG.error("%s", exc)
        for callback in list(self.on_lost):
            callback(exc)

    async def close(self) -> None:
        """Close the connection (pending publishes are flushed first); idempotent."""
        self._closing = True
        client, self._client = self._client, None
        if client is not None:
            await _quietly_close(client)
        self.slow_consumers.close()


async def _quietly_close(client: Client, timeout: float | None = None) -> None:
    try:
        async with asyncio.timeout(timeout):
            await client.close()
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        LOG.debug("closing the NATS connection: %s", type(exc).__name__)
