"""Transports: what ``get_rpc_transport`` / ``get_notification_transport`` return.

A transport is a handle on one relaybus bus (``relaybus.sync``: one event loop on a
background thread), connected on first use as oslo.messaging's are, and closed by
:meth:`Transport.cleanup`. URLs keep oslo's form; ``fake://`` is the embedded memory
transport, one broker per process as oslo's fake driver has it, and ``rabbit://`` takes
its options from ``[oslo_messaging_rabbit]``.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib import parse

import relaybus
import relaybus.sync
from relaybus.oslo_messaging import _opts, _rabbit
from relaybus.oslo_messaging.exceptions import MessageDeliveryFailure, MessagingException

__all__ = [
    "DriverLoadFailure",
    "InvalidTransportURL",
    "Transport",
    "TransportHost",
    "TransportOptions",
    "TransportURL",
    "get_transport",
    "set_transport_defaults",
]

LOG = logging.getLogger(__name__)

FAKE_BROKER = "memory://oslo-fake"
_RELAYBUS_SCHEMES = ("memory", "nats")


class InvalidTransportURL(MessagingException, relaybus.InvalidTransportURL):
    """A transport URL that cannot be parsed or used."""

    def __init__(self, url: Any, msg: str) -> None:
        Exception.__init__(self, msg)
        self.url = url
        self.reason = msg


class DriverLoadFailure(MessagingException):
    """The URL's driver does not exist in relaybus (kafka, amqp...)."""

    def __init__(self, driver: str, ex: BaseException | str) -> None:
        super().__init__(f'Failed to load transport driver "{driver}": {ex}')
        self.driver = driver
        self.ex = ex


def set_transport_defaults(control_exchange: str) -> None:
    """Set the default of ``[DEFAULT] control_exchange`` (as a service's setup does)."""
    from oslo_config import cfg

    cfg.set_defaults(_opts.transport_opts, control_exchange=control_exchange)


class TransportHost:
    """One broker address of a :class:`TransportURL`."""

    def __init__(self, hostname: str | None = None, port: int | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        self.hostname = hostname
        self.port = port
        self.username = username
        self.password = password

    def __hash__(self) -> int:
        return hash((self.hostname, self.port, self.username, self.password))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransportHost) and vars(self) == vars(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __repr__(self) -> str:
        shown = {k: ("****" if k == "password" and v else v) for k, v in vars(self).items()
                 if v is not None}
        return "<TransportHost " + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ">"


class TransportOptions:
    """Per-client transport options; ``at_least_once`` sends with the mandatory flag."""

    def __init__(self, at_least_once: bool = False) -> None:
        self._at_least_once = at_least_once

    @property
    def at_least_once(self) -> bool:
        return self._at_least_once


class TransportURL:
    """A parsed transport URL, oslo's ``driver://[user:pass@]host:port[,...]/vhost?query``."""

    def __init__(self, conf: Any, transport: str | None = None,
                 virtual_host: str | None = None,
                 hosts: Sequence[TransportHost] | None = None,
                 query: Mapping[str, str] | None = None) -> None:
        self.conf = conf
        self.conf.register_opts(_opts.transport_opts)
        self.transport = transport
        self.virtual_host = virtual_host
        self.hosts = list(hosts or [])
        self.query = dict(query or {})

    def __hash__(self) -> int:
        return hash((tuple(self.hosts), self.transport, self.virtual_host))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TransportURL) and self.transport == other.transport
                and self.virtual_host == other.virtual_host and self.hosts == other.hosts
                and self.query == other.query)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __repr__(self) -> str:
        return f"<TransportURL transport={self.transport!r}, hosts={self.hosts!r}>"

    def __str__(self) -> str:
        netlocs = []
        for host in self.hosts:
            text = ""
            if host.username is not None:
                text = parse.quote(host.username, safe="")
                if host.password is not None:
                    text += ":" + parse.quote(host.password, safe="")
                text += "@"
            if host.hostname:
                text += f"[{host.hostname}]" if ":" in host.hostname else host.hostname
            if host.port is not None:
                text += f":{host.port}"
            netlocs.append(text)
        out = f"{self.transport}://{','.join(netlocs)}/"
        if self.virtual_host:
            out += parse.quote(self.virtual_host)
        if self.query:
            out += "?" + parse.urlencode(self.query)
        return out

    @classmethod
    def parse(cls, conf: Any, url: str | None = None) -> TransportURL:
        """Parse ``url`` (default: ``conf.transport_url``).

        Raises:
            InvalidTransportURL: not a string, or no scheme.
        """
        conf.register_opts(_opts.transport_opts)
        url = url or conf.transport_url
        if not isinstance(url, str):
            raise InvalidTransportURL(url, "Wrong URL type")
        parsed = parse.urlparse(url)
        if not parsed.scheme:
            raise InvalidTransportURL(url, "No scheme specified")
        query = {k: ",".join(v) for k, v in parse.parse_qs(parsed.query).items()}
        virtual_host = parse.unquote(parsed.path[1:]) if parsed.path.startswith("/") else None
        hosts = []
        for part in parsed.netloc.split(","):
            if part:
                hosts.append(_parse_host(url, part))
        return cls(conf, parsed.scheme, virtual_host, hosts, query)


def _parse_host(url: str, text: str) -> TransportHost:
    username = password = None
    if "@" in text:
        username, text = text.rsplit("@", 1)
        if ":" in username:
            username, password = username.split(":", 1)
            password = parse.unquote(password)
        username = parse.unquote(username)
    port: int | None = None
    if text.startswith("["):
        hostname, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        hostname, _, port_text = text.partition(":")
    else:
        hostname, port_text = text, ""
    if port_text:
        if not port_text.isdigit():
            raise InvalidTransportURL(url, f"Invalid port {port_text!r}")
        port = int(port_text)
    return TransportHost(hostname=hostname or None, port=port, username=username,
                         password=password)


def _relaybus_target(conf: Any, url: TransportURL) -> tuple[str, dict[str, Any]]:
    """The relaybus URL and connect options a parsed oslo URL stands for."""
    options: dict[str, Any] = {"control_exchange": conf.control_exchange}
    scheme = url.transport
    if scheme == "fake":
        return FAKE_BROKER, options
    if scheme in _RELAYBUS_SCHEMES:
        return str(url), options
    if scheme not in ("rabbit", "kombu", "amqp+rabbit"):
        raise DriverLoadFailure(scheme or "", "relaybus drives rabbit:// (and fake://, "
                                "memory://, nats://); this driver is not available")
    options.update(_rabbit.rabbit_options(conf))
    hosts = list(url.hosts)
    if conf[_opts.RABBIT_GROUP].kombu_failover_strategy == "shuffle":
        random.shuffle(hosts)
    rabbit = TransportURL(conf, "rabbit", url.virtual_host, hosts)
    for key, value in url.query.items():
        options[key] = value  # relaybus's own option names; unknown ones fail clearly
    return str(rabbit), options


class Transport:
    """A handle on one messaging backend; connects on first use.

    Attributes:
        conf: the ``ConfigOpts`` the transport was made from.
    """

    def __init__(self, conf: Any, url: TransportURL,
                 allowed_remote_exmods: Sequence[str] | None = None) -> None:
        _opts.register_opts(conf)
        self.conf = conf
        self._url = url
        self._relaybus_url, self._options = _relaybus_target(conf, url)
        self.allowed_remote_exmods = list(allowed_remote_exmods or [])
        self._lock = threading.Lock()
        self._bus: relaybus.sync.SyncBus | None = None

    @property
    def bus(self) -> relaybus.sync.SyncBus:
        """The relaybus bus behind this transport (connected on first use).

        Raises:
            MessageDeliveryFailure: the broker cannot be reached or refuses the login.
        """
        with self._lock:
            if self._bus is None:
                try:
                    self._bus = relaybus.sync.connect(self._relaybus_url, **self._options)
                except relaybus.InvalidTransportURL as exc:
                    raise InvalidTransportURL(str(self._url), str(exc)) from exc
                except relaybus.TransportError as exc:
                    raise MessageDeliveryFailure(str(exc)) from exc
            return self._bus

    def _require_driver_features(self, requeue: bool = False) -> None:
        """oslo's hook: every relaybus transport can requeue."""

    def cleanup(self) -> None:
        """Stop the servers and listeners made from this transport and disconnect."""
        with self._lock:
            bus, self._bus = self._bus, None
        if bus is not None:
            bus.close()


class RPCTransport(Transport):
    """A transport for RPC."""


class NotificationTransport(Transport):
    """A transport for notifications."""


def _get_transport(conf: Any, url: str | TransportURL | None,
                   allowed_remote_exmods: Sequence[str] | None,
                   transport_cls: type[Transport]) -> Transport:
    _opts.register_opts(conf)
    if not isinstance(url, TransportURL):
        url = TransportURL.parse(conf, url)
    return transport_cls(conf, url, allowed_remote_exmods)


def get_transport(conf: Any, url: str | TransportURL | None = None,
                  allowed_remote_exmods: Sequence[str] | None = None) -> Transport:
    """A transport (deprecated in oslo: prefer get_rpc_transport or
    get_notification_transport).

    Raises:
        InvalidTransportURL, DriverLoadFailure.
    """
    return _get_transport(conf, url, allowed_remote_exmods, Transport)
