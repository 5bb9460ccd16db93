"""The ``rabbit://`` URL and its options, parsed once into an immutable value.

Options come from the URL query (``rabbit://h/?ssl=1&heartbeat=30``) and from
``relaybus.connect(url, **options)``; both arrive here as one mapping. Where
oslo.messaging has a name for an option (``[oslo_messaging_rabbit]``) relaybus uses the
same name, so a deployment's settings carry over: ``amqp_durable_queues``,
``amqp_auto_delete``, ``rabbit_quorum_queue``, ``rabbit_transient_queues_ttl``,
``rabbit_qos_prefetch_count``, ``ssl``, ``ssl_ca_file``, ``ssl_cert_file``,
``ssl_key_file``, ``ssl_enforce_hostname_verification`` and
``heartbeat_timeout_threshold`` (also spelled ``heartbeat``). The rest are relaybus's own
and documented on :class:`RabbitOptions`.
"""

from __future__ import annotations

import dataclasses
import os
import ssl as tls
from collections.abc import Mapping
from typing import Any

from relaybus.drivers.rabbit.amqp import ConnectParams
from relaybus.errors import InvalidTransportURL
from relaybus.transport.options import option_values
from relaybus.url import TransportURL

DEFAULT_PORT = 5672
DEFAULT_TLS_PORT = 5671
DEFAULT_USER = "guest"
DEFAULT_PASSWORD = "guest"

_ALIASES = {"heartbeat_timeout_threshold": "heartbeat", "rabbit_login_method": "login_method"}
LOGIN_METHODS = ("PLAIN", "AMQPLAIN")


@dataclasses.dataclass(frozen=True, slots=True)
class RabbitOptions:
    """Everything the rabbit driver can be told.

    Attributes:
        heartbeat: AMQP heartbeat interval in seconds (0: off). oslo's default, 60.
        amqp_durable_queues: RPC topic/server queues, notification and pool queues and the
            control exchange are durable (they survive a broker restart).
        amqp_auto_delete: the same queues and exchange are auto-deleted.
        rabbit_quorum_queue: those queues are quorum queues (``x-queue-type: quorum``,
            durable): replicated, for notifications that must not be lost.
        rabbit_transient_quorum_queue: reply and fanout queues are quorum queues and
            fanout exchanges durable, as oslo.messaging declares them with this option.
            Deployments that enable it need it on the relaybus side too: an oslo server
            is refused (406 PRECONDITION_FAILED) a fanout exchange a relaybus server
            declared otherwise.
        rabbit_quorum_delivery_limit, rabbit_quorum_max_memory_length,
            rabbit_quorum_max_memory_bytes: ``x-delivery-limit``, ``x-max-in-memory-length``
            and ``x-max-in-memory-bytes`` of every quorum queue (0: unset), as oslo adds them.
        rabbit_ha_queues: ``x-ha-policy: all`` on every queue, as oslo adds it (RabbitMQ 3
            ignores it: mirroring is a policy there); not with quorum queues.
        rabbit_transient_queues_ttl: seconds an unused reply or fanout queue lives
            (``x-expires``); 0 leaves it to live forever. oslo's default, 1800.
        rabbit_qos_prefetch_count: deliveries a consumer may hold unacknowledged
            (``basic.qos``); 0 means no limit (oslo's default). relaybus's default, 256,
            bounds a server's memory and lets servers of a topic share load fairly.
        rpc_message_ttl: seconds a cast waits in a queue before the broker drops it
            (``expiration``); calls always expire after their own timeout, as in oslo.
        publisher_confirms: casts and notifications return once the broker has taken
            them (and a cast nobody can take raises MessageUndeliverable).
        keep_rpc_queues: keep a topic's queues when its last relaybus server stops, as
            oslo.messaging does, so requests wait for a server. By default an idle, empty
            queue is deleted, so a request to a topic nobody serves fails at once with
            MessageUndeliverable instead of timing out.
        send_timeout: seconds a cast or notification may wait for a connection and for
            the broker's confirm before ConnectionFailure.
        connect_timeout: seconds for connecting and logging in to one host.
        close_timeout: seconds ``bus.close()`` gives the broker to take the clean-up
            (deleting the bus's reply queue, closing channels and the connection). A broker
            that does not answer in time (a resource alarm blocks the connection, or it
            hangs) has the socket aborted: close returns after at most this long, and a
            reply queue it could not delete expires by ``rabbit_transient_queues_ttl``.
        reconnect_delay: first pause before reconnecting; it doubles (with jitter) up to
            ``reconnect_delay_max``.
        ssl: connect with TLS; ``ssl_ca_file`` verifies the broker's certificate,
            ``ssl_cert_file``/``ssl_key_file`` present a client certificate.
        login_method: the SASL mechanism of the login, ``PLAIN`` (the default) or
            ``AMQPLAIN`` (oslo's ``rabbit_login_method``; for brokers that offer only it).
    """

    heartbeat: int = 60
    amqp_durable_queues: bool = False
    amqp_auto_delete: bool = False
    rabbit_quorum_queue: bool = False
    rabbit_transient_quorum_queue: bool = False
    rabbit_quorum_delivery_limit: int = 0
    rabbit_quorum_max_memory_length: int = 0
    rabbit_quorum_max_memory_bytes: int = 0
    rabbit_ha_queues: bool = False
    rabbit_transient_queues_ttl: int = 1800
    rabbit_qos_prefetch_count: int = 256
    rpc_message_ttl: float | None = None
    publisher_confirms: bool = True
    keep_rpc_queues: bool = False
    send_timeout: float = 30.0
    connect_timeout: float = 10.0
    close_timeout: float = 5.0
    reconnect_delay: float = 0.5
    reconnect_delay_max: float = 10.0
    ssl: bool = False
    ssl_ca_file: str | None = None
    ssl_cert_file: str | None = None
    ssl_key_file: str | None = None
    ssl_enforce_hostname_verification: bool = False
    login_method: str = "PLAIN"

    @classmethod
    def parse(cls, url: str, options: Mapping[str, Any]) -> RabbitOptions:
        """Build options from strings (URL query) or Python values (connect kwargs).

        Raises:
            InvalidTransportURL: an unknown option, or a value of the wrong kind.
        """
        parsed = cls(**option_values(cls, url, options, "rabbit", _ALIASES))
        parsed._validate(url)
        return parsed

    def _validate(self, url: str) -> None:
        for name in ("heartbeat", "rabbit_transient_queues_ttl", "rabbit_qos_prefetch_count",
                     "rabbit_quorum_delivery_limit", "rabbit_quorum_max_memory_length",
                     "rabbit_quorum_max_memory_bytes"):
            if getattr(self, name) < 0:
                raise InvalidTransportURL(url, f"{name} must not be negative")
        for name in ("send_timeout", "connect_timeout", "close_timeout", "reconnect_delay",
                     "reconnect_delay_max"):
            if getattr(self, name) <= 0:
                raise InvalidTransportURL(url, f"{name} must be a positive number of seconds")
        if self.rpc_message_ttl is not None and self.rpc_message_ttl <= 0:
            raise InvalidTransportURL(url, "rpc_message_ttl must be a positive number")
        if self.reconnect_delay_max < self.reconnect_delay:
            raise InvalidTransportURL(url, "reconnect_delay_max must be >= reconnect_delay")
        for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise InvalidTransportURL(url, f"{name} {path!r} is not a readable file")
        if self.ssl_key_file and not self.ssl_cert_file:
            raise InvalidTransportURL(url, "ssl_key_file needs ssl_cert_file")
        if self.rabbit_ha_queues and (self.rabbit_quorum_queue
                                      or self.rabbit_transient_quorum_queue):
            raise InvalidTransportURL(url, "rabbit_ha_queues and quorum queues exclude each "
                                      "other (a queue is quorum or mirrored, not both)")
        if self.login_method not in LOGIN_METHODS:
            raise InvalidTransportURL(url, f"login_method must be one of "
                                      f"{', '.join(LOGIN_METHODS)}")
        if not self.ssl and (self.ssl_ca_file or self.ssl_cert_file):
            raise InvalidTransportURL(url, "ssl_* files are given but ssl is off; add ssl=1")

    def ssl_context(self, url: str = "rabbit://") -> tls.SSLContext | None:
        """The TLS context for ``ssl=1`` (None without TLS), following oslo's rules.

        With ``ssl_ca_file`` the broker's certificate is verified (its host name only
        with ``ssl_enforce_hostname_verification``); without it, it is not checked at all.

        Raises:
            InvalidTransportURL: a certificate or key file that cannot be loaded.
        """
        if not self.ssl:
            return None
        context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        try:
            if self.ssl_ca_file:
                context.load_verify_locations(cafile=self.ssl_ca_file)
                context.check_hostname = self.ssl_enforce_hostname_verification
                context.verify_mode = tls.CERT_REQUIRED
            else:
                context.check_hostname = False
                context.verify_mode = tls.CERT_NONE
            if self.ssl_cert_file:
                context.load_cert_chain(self.ssl_cert_file, self.ssl_key_file)
        except (tls.SSLError, OSError) as exc:
            raise InvalidTransportURL(url, f"cannot load the TLS files: {exc}") from exc
        return context



def connect_params(url: TransportURL, options: RabbitOptions,
                   connection_name: str) -> list[ConnectParams]:
    """One ConnectParams per URL host, in failover order.

    A host without credentials borrows those of the host before it (so
    ``rabbit://u:p@a,b/`` logs in to b as u), else RabbitMQ's guest/guest; no host at
    all means localhost.
    """
    context = options.ssl_context(url.masked())
    port = DEFAULT_TLS_PORT if options.ssl else DEFAULT_PORT
    vhost = url.virtual_host or "/"
    hosts = url.hosts or ()
    params: list[ConnectParams] = []
    username, password = DEFAULT_USER, DEFAULT_PASSWORD
    for host in hosts or [None]:
        if host is not None and host.username is not None:
            username, password = host.username, host.password or ""
        if options.login_method == "AMQPLAIN" and max(
                len(username.encode()), len(password.encode())) >= 128:
            raise InvalidTransportURL(url.masked(), "an AMQPLAIN login needs a user name "
                                      "and a password under 128 bytes each; use PLAIN")
        params.append(ConnectParams(
            host=(host.hostname if host is not None else None) or "localhost",
            port=(host.port if host is not None else None) or port,
            username=username, password=password, virtual_host=vhost, ssl_context=context,
            heartbeat=options.heartbeat, connect_timeout=options.connect_timeout,
            connection_name=connection_name, login_method=options.login_method))
    return params
