"""``RPCClient``: oslo's client API over a relaybus client, with oslo's outcomes.

Where oslo and relaybus differ, the client does what oslo does: a call nobody receives
waits out its timeout and raises MessagingTimeout, a cast nobody receives is dropped
(unless ``TransportOptions(at_least_once=True)``: MessageUndeliverable at once), and
exceptions the caller may not rebuild arrive as :class:`RemoteError`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import relaybus
from relaybus.oslo_messaging import _opts
from relaybus.oslo_messaging.exceptions import (
    InvalidTarget,
    MessageDeliveryFailure,
    MessageUndeliverable,
    MessagingException,
    MessagingTimeout,
)
from relaybus.oslo_messaging.rpc._remote import oslo_shaped
from relaybus.oslo_messaging.serializer import NoOpSerializer, bridge
from relaybus.oslo_messaging.target import Target, to_relaybus
from relaybus.target import parse_version

__all__ = ["ClientSendError", "RPCClient", "RPCVersionCapError", "RemoteError",
           "get_rpc_client"]

LOG = logging.getLogger(__name__)
_marker: Any = object()


class RemoteError(MessagingException, relaybus.RemoteError):
    """The remote endpoint raised an exception the caller may not rebuild.

    Attributes:
        exc_type: the remote exception's class name.
        value: its message.
        traceback: the remote traceback, as text.
    """

    def __init__(self, exc_type: str | None = None, value: str | None = None,
                 traceback: str | None = None) -> None:
        Exception.__init__(self, f"Remote error: {exc_type} {value}\n{traceback}.")
        self.exc_type = exc_type
        self.value = value
        self.traceback = traceback  # type: ignore[assignment]  # oslo's is text
        self.module = None


class RPCVersionCapError(MessagingException, relaybus.RPCVersionCapError):
    """The request's version is above the client's version_cap."""

    def __init__(self, version: str, version_cap: str) -> None:
        relaybus.RPCVersionCapError.__init__(self, version, version_cap)
        # oslo's text, two spaces included: services match on it
        self.args = ((f"Requested message version, {version} is incompatible.  It needs to "
                     "be equal in major version and less than or equal in minor version as "
                     f"the specified version cap {version_cap}."),)


class ClientSendError(MessagingException):
    """Sending to the target failed."""

    def __init__(self, target: Any, ex: BaseException) -> None:
        super().__init__(f'Failed to send to target "{target}": {ex}')
        self.target = target
        self.ex = ex


def _compatible(cap: str, version: str) -> bool:
    c, v = parse_version(cap), parse_version(version)
    return c[0] == v[0] and v[1:] <= c[1:]


def _remote_text(exc: BaseException) -> str:
    tb = getattr(exc, "remote_traceback", None)
    return tb if isinstance(tb, str) else ""


def _translate(exc: Exception, target: Any) -> Exception:
    """The oslo-named exception for a relaybus one raised by a call or cast."""
    if isinstance(exc, MessagingException):
        return exc
    if isinstance(exc, relaybus.MessagingTimeout):
        return MessagingTimeout(str(exc))
    if isinstance(exc, relaybus.RemoteError):
        tb = exc.traceback
        text = "".join(tb) if isinstance(tb, list) else str(tb or "")
        return RemoteError(exc.exc_type, exc.value, text)
    if isinstance(exc, (relaybus.NoSuchMethod, relaybus.UnsupportedVersion)):
        # raised by the server's dispatcher: oslo callers get these as RemoteError
        return RemoteError(type(exc).__name__.removesuffix("_Remote"), str(exc),
                           _remote_text(exc))
    if isinstance(exc, relaybus.RPCVersionCapError):
        return RPCVersionCapError(exc.version, exc.version_cap)
    shaped = oslo_shaped(exc)
    if shaped is not exc:
        assert isinstance(shaped, Exception)
        return shaped
    if isinstance(exc, relaybus.InvalidTarget):
        return InvalidTarget(str(exc), target)
    if isinstance(exc, relaybus.TransportError):
        return MessageDeliveryFailure(str(exc))
    return exc


class _BaseCallContext:
    """What a client and its prepared copies share."""

    def __init__(self, transport: Any, target: Target, serializer: Any,
                 timeout: float | None = None, version_cap: str | None = None,
                 retry: int | None = None, call_monitor_timeout: float | None = None,
                 transport_options: Any = None) -> None:
        self.conf = transport.conf
        self.transport = transport
        self.target = target
        self.serializer = serializer
        self.timeout = timeout
        self.call_monitor_timeout = call_monitor_timeout
        self.retry = retry
        self.version_cap = version_cap
        self.transport_options = transport_options
        # the relaybus client each send goes through, made once per timeout (and made anew
        # when the target's fields, the serializer or the monitor timeout have changed)
        self._clients: dict[float | None, tuple[Any, ...]] = {}

    def can_send_version(self, version: Any = _marker) -> bool:
        """Whether a request at ``version`` (default: the target's) fits version_cap."""
        wanted = self.target.version if version is _marker else version
        return not self.version_cap or wanted is None or _compatible(self.version_cap,
                                                                     wanted)

    @property
    def _at_least_once(self) -> bool:
        return bool(self.transport_options is not None
                    and getattr(self.transport_options, "at_least_once", False))

    def _client(self, timeout: float | None) -> relaybus.sync.SyncRPCClient:
        if not self.target.topic:
            raise InvalidTarget("A topic is required to send", self.target)
        if self.version_cap and self.target.version \
                and not _compatible(self.version_cap, self.target.version):
            raise RPCVersionCapError(self.target.version, self.version_cap)
        t = self.target  # oslo's targets are mutable: the client follows their fields
        fields = (t.exchange, t.topic, t.namespace, t.version, t.server, t.fanout)
        made = self._clients.get(timeout)
        if made is not None and made[0] == fields and made[1] is self.serializer \
                and made[2] == self.call_monitor_timeout:
            return made[3]
        try:
            target = to_relaybus(self.target)
        except relaybus.InvalidTarget as exc:
            raise InvalidTarget(str(exc), self.target) from exc
        client = self.transport.bus.rpc_client(
            target, timeout=timeout, serializer=bridge(self.serializer),
            allowed_remote_exmods=self.transport.allowed_remote_exmods,
            call_monitor_timeout=self.call_monitor_timeout)
        if len(self._clients) >= 8:  # timeouts vary only as the caller's settings do
            self._clients.clear()
        self._clients[timeout] = (fields, self.serializer, self.call_monitor_timeout, client)
        return client

    def _undeliverable(self, exc: relaybus.MessageUndeliverable) -> MessageUndeliverable:
        return MessageUndeliverable(exc, self.target.exchange or self.conf.control_exchange,
                                    self.target.topic, None)

    def cast(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        """Invoke ``method`` without waiting (every server of the topic if fanout).

        Raises:
            MessageUndeliverable: nobody took it, with ``at_least_once`` only.
            MessageDeliveryFailure: the transport failed.
        """
        client = self._client(None)
        try:
            client.cast(ctxt, method, **kwargs)
        except relaybus.MessageUndeliverable as exc:
            if self._at_least_once:
                raise self._undeliverable(exc) from exc
            LOG.debug("cast %s to %s: nobody listens, dropped", method, self.target)
        except Exception as exc:
            translated = _translate(exc, self.target)
            if translated is exc:
                raise
            raise translated from exc

    def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        """Invoke ``method`` on one server and return what it returns.

        Raises:
            MessagingTimeout: no reply within the timeout.
            RemoteError: the endpoint raised something the caller may not rebuild
                (otherwise that exception itself).
            MessageUndeliverable: nobody took it, with ``at_least_once`` only.
        """
        if self.target.fanout:
            raise InvalidTarget("A call cannot be used with fanout", self.target)
        timeout = self.timeout if self.timeout is not None else self.conf.rpc_response_timeout
        timeout = timeout if timeout and timeout > 0 else None
        client = self._client(timeout)
        started = time.monotonic()
        try:
            return client.call(ctxt, method, **kwargs)
        except relaybus.MessageUndeliverable as exc:
            if self._at_least_once:
                raise self._undeliverable(exc) from exc
            # oslo sends without the mandatory flag and waits for its timeout
            if timeout is not None:
                time.sleep(max(0.0, timeout - (time.monotonic() - started)))
            raise MessagingTimeout(f"Timed out waiting for a reply to {method}: nobody "
                                   f"listens on {self.target}") from exc
        except Exception as exc:
            translated = _translate(exc, self.target)
            if translated is exc:
                raise
            raise translated from exc

    def prepare(self, exchange: Any = _marker, topic: Any = _marker,
                namespace: Any = _marker, version: Any = _marker, server: Any = _marker,
                fanout: Any = _marker, timeout: Any = _marker, version_cap: Any = _marker,
                retry: Any = _marker, call_monitor_timeout: Any = _marker,
                transport_options: Any = _marker) -> _CallContext:
        """A copy of this client with some target fields or options changed."""
        changes = {k: v for k, v in {"exchange": exchange, "topic": topic, "namespace": namespace,
                                         "version": version, "server": server,
                                         "fanout": fanout}.items() if v is not _marker}
        target = self.target(**changes)

        def keep(value: Any, current: Any) -> Any:
            return current if value is _marker else value

        return _CallContext(self.transport, target, self.serializer,
                            keep(timeout, self.timeout), keep(version_cap, self.version_cap),
                            keep(retry, self.retry),
                            keep(call_monitor_timeout, self.call_monitor_timeout),
                            keep(transport_options, self.transport_options))


class _CallContext(_BaseCallContext):
    """A prepared client."""


class RPCClient(_BaseCallContext):
    """Invokes methods on the servers of a target (use :func:`get_rpc_client`).

    Args:
        transport: from ``get_rpc_transport``.
        target: the default target of calls and casts.
        timeout: seconds a call waits (default ``[DEFAULT] rpc_response_timeout``).
        version_cap: highest version this client may send.
        serializer: converts arguments, results and contexts.
        retry: accepted for compatibility; relaybus reconnects on its own.
        call_monitor_timeout: ask servers for heartbeats; a call silent for this long
            fails early.
        transport_options: :class:`~relaybus.oslo_messaging.TransportOptions`.
    """

    def __init__(self, transport: Any, target: Target, timeout: float | None = None,
                 version_cap: str | None = None, serializer: Any = None,
                 retry: int | None = None, call_monitor_timeout: float | None = None,
                 transport_options: Any = None, _manual_load: bool = True) -> None:
        if _manual_load:
            LOG.warning("Using RPCClient manually to instantiate client. Please use "
                        "get_rpc_client to obtain an RPC client instance.")
        _opts.register_opts(transport.conf)
        super().__init__(transport, target, serializer or NoOpSerializer(), timeout,
                         version_cap, retry, call_monitor_timeout, transport_options)


def get_rpc_client(transport: Any, target: Target, client_cls: type[RPCClient] = RPCClient,
                   **kwargs: Any) -> RPCClient:
    """An RPC client for ``target`` on ``transport``."""
    return client_cls(transport, target, _manual_load=False, **kwargs)
