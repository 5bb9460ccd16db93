"""The ``nats://`` URL and its options, parsed once into an immutable value.

``nats://[user:password@]host[:port][,host[:port]...]/[?option=value&...]``: several hosts
are one NATS cluster, tried in order; credentials go to every host (a user name without a
password is a token). Options come from the URL query and from
``relaybus.connect(url, **options)``; both arrive here as one mapping and are documented on
:class:`NatsOptions`. NATS has no virtual hosts: a path in the URL is refused (use accounts
through credentials, or ``subject_prefix``).
"""

from __future__ import annotations

import dataclasses
import os
import ssl
from collections.abc import Mapping
from typing import Any

from relaybus.errors import InvalidTransportURL
from relaybus.transport.options import option_values
from relaybus.url import TransportURL

DEFAULT_PORT = 4222

_CHOICES = {
    "notifications": ("jetstream", "core"),
    "stream_storage": ("file", "memory"),
    "deliver_policy": ("all", "new"),
}


@dataclasses.dataclass(frozen=True, slots=True)
class NatsOptions:
    """Everything the nats driver can be told.

    Attributes:
        connect_timeout: seconds for one connection attempt to one server.
        reconnect_delay: first pause before reconnecting after the connection is lost;
            it doubles (with jitter) up to ``reconnect_delay_max``.
        max_reconnect_attempts: attempts per server before giving up for good; -1 (the
            default) never gives up, as a long-running service should.
        ping_interval: seconds between keep-alive pings; two unanswered pings mark the
            connection dead and start a reconnect.
        name: the connection name shown by the server's monitoring.
        token, creds_file, nkeys_seed_file: other ways to authenticate (a token, a
            decentralised-auth ``.creds`` file, an nkey seed file).
        tls: connect with TLS (also implied by any ``tls_*`` file). ``tls_ca_file``
            verifies the server certificate (else the system store does);
            ``tls_cert_file``/``tls_key_file`` present a client certificate;
            ``tls_hostname`` is the name checked in the server certificate;
            ``tls_verify=0`` skips verification (tests only).
        subject_prefix: the first token(s) of every relaybus subject.
        inbox_prefix: where replies come back (accounts with subject permissions may need
            to change it).
        confirm_casts: a cast is a NATS request that the receiving server confirms on
            receipt, before running it; this is what lets a cast to nobody fail with
            MessageUndeliverable. Off, casts are fire-and-forget: faster, blind.
        send_timeout: seconds a cast waits for its confirmation, and a notification for
            JetStream's, before failing (MessagingTimeout, ConnectionFailure).
        notifications: ``jetstream`` (durable, at-least-once, the default) or ``core``
            (plain NATS: at-most-once, nothing kept while no listener runs, faster).
        stream_max_age: seconds a stream keeps a notification (0: no limit).
        stream_max_bytes, stream_max_msgs: size limits of each stream (-1: none).
        stream_storage: ``file`` (survives a server restart) or ``memory``.
        stream_replicas: copies of each stream in a JetStream cluster.
        duplicate_window: seconds during which a notification resent with the same
            ``message_id`` is stored only once.
        ack_wait: seconds a listener may hold a notification before the server
            redelivers it (a crashed listener's notifications come back after this).
        max_deliver: deliveries of one notification before the server gives up (-1: no
            limit).
        deliver_policy: where a new pool starts: ``all`` (everything the stream still
            keeps) or ``new`` (only what is published from then on).
        jetstream_domain: the JetStream domain that keeps the streams, when it is not
            the one of the server the bus connects to: a service attached to a leaf node
            stores its notifications in the hub's domain (``jetstream_domain=hub``), so
            they survive the leaf. Unset, the connected server's own JetStream is used.
        fetch_batch: notifications a listener asks for at once.
        idle_heartbeat: seconds between the server's heartbeats on an idle pull
            request; two missed ones make the listener ask again (after a server restart).
            A pull request lives for 2.5 heartbeats (at least 5 s).
    """

    connect_timeout: float = 5.0
    reconnect_delay: float = 0.5
    reconnect_delay_max: float = 10.0
    max_reconnect_attempts: int = -1
    ping_interval: float = 20.0
    name: str | None = None
    token: str | None = None
    creds_file: str | None = None
    nkeys_seed_file: str | None = None
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_hostname: str | None = None
    tls_verify: bool = True
    subject_prefix: str = "relaybus"
    inbox_prefix: str = "_INBOX"
    confirm_casts: bool = True
    send_timeout: float = 10.0
    notifications: str = "jetstream"
    stream_max_age: float = 86400.0
    stream_max_bytes: int = -1
    stream_max_msgs: int = -1
    stream_storage: str = "file"
    stream_replicas: int = 1
    duplicate_window: float = 120.0
    ack_wait: float = 30.0
    max_deliver: int = -1
    deliver_policy: str = "all"
    jetstream_domain: str | None = None
    fetch_batch: int = 64
    idle_heartbeat: float = 2.0

    @classmethod
    def parse(cls, url: str, options: Mapping[str, Any]) -> NatsOptions:
        """Build options from strings (URL query) or Python values (connect kwargs).

        Raises:
            InvalidTransportURL: an unknown option, or a value of the wrong kind.
        """
        parsed = cls(**option_values(cls, url, options, "nats"))
        parsed._validate(url)
        return parsed

    def _validate(self, url: str) -> None:
        for name in ("connect_timeout", "reconnect_delay", "reconnect_delay_max",
                     "ping_interval", "send_timeout", "duplicate_window", "ack_wait",
                     "idle_heartbeat"):
            if getattr(self, name) <= 0:
                raise InvalidTransportURL(url, f"{name} must be a positive number of seconds")
        if self.reconnect_delay_max < self.reconnect_delay:
            raise InvalidTransportURL(url, "reconnect_delay_max must be >= reconnect_delay")
        if self.stream_max_age < 0:
            raise InvalidTransportURL(url, "stream_max_age must be 0 (no limit) or more")
        if self.fetch_batch < 1 or self.stream_replicas < 1:
            raise InvalidTransportURL(url, "fetch_batch and stream_replicas must be >= 1")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise InvalidTransportURL(url, f"{name} must be one of {', '.join(choices)}")
        for name in ("subject_prefix", "inbox_prefix"):
            value = getattr(self, name)
            parts = value.split(".")
            if not value or any(not p or p in ("*", ">") or any(c.isspace() for c in p)
                                for p in parts):
                raise InvalidTransportURL(url, f"{name} {value!r} is not a subject prefix")
        if self.inbox_prefix.startswith("$"):
            raise InvalidTransportURL(url, "inbox_prefix may not start with '$': replies "
                                      "never go to the NATS server's own subjects")
        domain = self.jetstream_domain
        if domain is not None and (not domain or any(c in domain for c in ".*>")
                                   or any(c.isspace() for c in domain)):
            raise InvalidTransportURL(url, f"jetstream_domain {domain!r} is not a domain "
                                      "name (one subject token: no dots, wildcards or "
                                      "spaces)")
        for name in ("tls_ca_file", "tls_cert_file", "tls_key_file", "creds_file",
                     "nkeys_seed_file"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise InvalidTransportURL(url, f"{name} {path!r} is not a readable file")
        if self.tls_key_file and not self.tls_cert_file:
            raise InvalidTransportURL(url, "tls_key_file needs tls_cert_file")

    @property
    def jetstream_api_prefix(self) -> str:
        """Where JetStream API requests go: ``$JS.API``, or ``$JS.<domain>.API``."""
        domain = self.jetstream_domain
        return "$JS.API" if domain is None else f"$JS.{domain}.API"

    @property
    def uses_tls(self) -> bool:
        return self.tls or any((self.tls_ca_file, self.tls_cert_file, self.tls_hostname))

    def ssl_context(self, url: str = "nats://") -> ssl.SSLContext | None:
        """The TLS context (None without TLS).

        Raises:
            InvalidTransportURL: a certificate or key file that cannot be loaded.
        """
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(cafile=self.tls_ca_file)
            if not self.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.tls_cert_file:
                context.load_cert_chain(self.tls_cert_file, self.tls_key_file)
        except (ssl.SSLError, OSError) as exc:
            raise InvalidTransportURL(url, f"cannot load the TLS files: {exc}") from exc
        return context



@dataclasses.dataclass(frozen=True, slots=True)
class ServerList:
    """The servers and credentials a URL names, ready for ``nats.connect``."""

    servers: list[str]
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    token: str | None = dataclasses.field(default=None, repr=False)


def server_list(url: TransportURL, options: NatsOptions) -> ServerList:
    """Server URLs (without credentials) and the one set of credentials of ``url``.

    Raises:
        InvalidTransportURL: a path (NATS has no virtual hosts), or hosts with
            different credentials.
    """
    text = url.masked()
    if url.virtual_host:
        raise InvalidTransportURL(text, "NATS has no virtual hosts: drop the path, or use "
                                  "credentials of another account or subject_prefix")
    scheme = "tls" if options.uses_tls else "nats"
    servers = []
    credentials = {(h.username, h.password) for h in url.hosts if h.username is not None}
    if len(credentials) > 1:
        raise InvalidTransportURL(text, "every host of a NATS URL must use the same "
                                  "credentials (they are one cluster)")
    for host in url.hosts or ():
        name = host.hostname or "localhost"
        if ":" in name:
            name = f"[{name}]"
        servers.append(f"{scheme}://{name}:{host.port or DEFAULT_PORT}")
    if not servers:
        servers.append(f"{scheme}://localhost:{DEFAULT_PORT}")
    user = password = None
    token = options.token
    if credentials:
        ((user, password),) = credentials
        if password is None:
            if token is not None:
                raise InvalidTransportURL(text, "a token both in the URL and as an option")
            user, token = None, user
    return ServerList(servers=servers, user=user, password=password, token=token)
