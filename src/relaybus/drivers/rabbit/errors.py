"""The boundary: AMQP-layer and socket errors become relaybus errors here, and only here.

=============================================  ==============================================
raised below                                   raised to relaybus users
=============================================  ==============================================
HandshakeRefused 403 (credentials)             AuthenticationFailure
HandshakeRefused 530 (missing vhost, no perm)  AuthenticationFailure
ConnectionLost, ConnectionClosed, OSError,     ConnectionFailure
TimeoutError, ssl.SSLError
ChannelClosed 404/406/... (declare mismatch,   TransportError (with the broker's reason and,
missing exchange)                              for 406, the options that usually fix it)
=============================================  ==============================================
"""

from __future__ import annotations

from relaybus.drivers.rabbit.amqp import (
    AMQPError,
    ChannelClosed,
    ConnectionClosed,
    ConnectionLost,
    HandshakeRefused,
)
from relaybus.drivers.rabbit.amqp.errors import ACCESS_REFUSED, PRECONDITION_FAILED
from relaybus.errors import (
    AuthenticationFailure,
    ConnectionFailure,
    MessagingError,
    TransportError,
)

_406_HINT = ("; the queue or exchange exists with other settings: match the deployment's "
             "amqp_durable_queues / amqp_auto_delete / rabbit_quorum_queue options")


def translate(exc: BaseException, where: str = "") -> MessagingError:
    """The relaybus error for a lower-level one (raise it ``from exc``).

    Args:
        exc: what the AMQP layer, the socket or TLS raised.
        where: what was being done, for the message (e.g. ``"connecting to h:5672"``).
    """
    prefix = f"{where}: " if where else ""
    if isinstance(exc, MessagingError):
        return exc
    if isinstance(exc, HandshakeRefused):
        what = "credentials" if exc.code == ACCESS_REFUSED else "virtual host"
        return AuthenticationFailure(f"{prefix}the broker refused the {what}: "
                                     f"{exc.code} {exc.text}")
    if isinstance(exc, ChannelClosed):
        hint = _406_HINT if exc.code == PRECONDITION_FAILED else ""
        return TransportError(f"{prefix}{exc}{hint}")
    if isinstance(exc, (ConnectionLost, ConnectionClosed, OSError, TimeoutError, AMQPError)):
        return ConnectionFailure(f"{prefix}{exc or type(exc).__name__}")
    return TransportError(f"{prefix}{type(exc).__name__}: {exc}")


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection (not just a channel) is gone."""
    return isinstance(exc, (ConnectionLost, ConnectionClosed, OSError, TimeoutError))
