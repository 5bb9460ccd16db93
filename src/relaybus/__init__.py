"""relaybus: asyncio-first RPC and notifications for distributed services.

Wire-compatible with oslo.messaging on RabbitMQ; the embedded ``memory://`` transport
is the default. Start with :func:`connect`.
"""

from relaybus.bus import Bus, connect
from relaybus.contracts.service import Service
from relaybus.delivery import DeadLetterReason, DeliveryPolicy
from relaybus.errors import (
    AuthenticationFailure,
    ConnectionFailure,
    InvalidArguments,
    InvalidPayload,
    InvalidTarget,
    InvalidTransportURL,
    MalformedMessage,
    MessageTooLarge,
    MessageUndeliverable,
    MessagingError,
    MessagingTimeout,
    NoSuchMethod,
    Rejected,
    RemoteError,
    RPCVersionCapError,
    ServerError,
    TransportError,
    UnsupportedVersion,
)
from relaybus.middleware import Hooks, Middleware, NotificationInfo, RequestInfo
from relaybus.notify import (
    BatchNotificationListener,
    NotificationFilter,
    NotificationListener,
    NotificationResult,
    Notifier,
)
from relaybus.rpc import (
    DefaultRPCAccessPolicy,
    ExplicitRPCAccessPolicy,
    RPCAccessPolicy,
    RPCClient,
    RPCServer,
    expose,
)
from relaybus.serializer import JsonPayloadSerializer, NoOpSerializer, Serializer
from relaybus.target import Target
from relaybus.url import TransportURL, parse_url

# The one place the version is stated: hatch reads it from here for the package metadata.
__version__ = "0.1.0"

__all__ = [
    "AuthenticationFailure",
    "BatchNotificationListener",
    "Bus",
    "ConnectionFailure",
    "DeadLetterReason",
    "DefaultRPCAccessPolicy",
    "DeliveryPolicy",
    "ExplicitRPCAccessPolicy",
    "Hooks",
    "InvalidArguments",
    "InvalidPayload",
    "InvalidTarget",
    "InvalidTransportURL",
    "JsonPayloadSerializer",
    "MalformedMessage",
    "MessageTooLarge",
    "MessageUndeliverable",
    "MessagingError",
    "MessagingTimeout",
    "Middleware",
    "NoOpSerializer",
    "NoSuchMethod",
    "NotificationFilter",
    "NotificationInfo",
    "NotificationListener",
    "NotificationResult",
    "Notifier",
    "RPCAccessPolicy",
    "RPCClient",
    "RPCServer",
    "RPCVersionCapError",
    "Rejected",
    "RemoteError",
    "RequestInfo",
    "Serializer",
    "ServerError",
    "Service",
    "Target",
    "TransportError",
    "TransportURL",
    "UnsupportedVersion",
    "connect",
    "expose",
    "parse_url",
]
