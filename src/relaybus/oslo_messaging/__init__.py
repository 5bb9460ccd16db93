"""oslo.messaging's public API on relaybus: switch a service with one import line.

::

    from relaybus import oslo_messaging   # was: import oslo_messaging

Transports, RPC clients and servers, notifiers and listeners keep oslo.messaging's names,
signatures, options (oslo.config, same groups) and behaviour; underneath is relaybus's
``relaybus.sync`` facade (one event loop on a background thread, endpoint methods on a
pool of native threads). Needs the ``relaybus[oslo]`` extra (oslo.config). What differs
from oslo.messaging, and why, is in docs/oslo-migration.md.
"""

from relaybus.oslo_messaging.exceptions import (
    ConfigurationError,
    InvalidTarget,
    MessageDeliveryFailure,
    MessageUndeliverable,
    MessagingException,
    MessagingTimeout,
)
from relaybus.oslo_messaging.notify import (
    LoggingErrorNotificationHandler,
    LoggingNotificationHandler,
    NotificationFilter,
    NotificationResult,
    Notifier,
    PublishErrorsHandler,
    get_batch_notification_listener,
    get_notification_listener,
    get_notification_transport,
)
from relaybus.oslo_messaging.rpc import (
    ClientSendError,
    DefaultRPCAccessPolicy,
    ExpectedException,
    ExplicitRPCAccessPolicy,
    LegacyRPCAccessPolicy,
    NoSuchMethod,
    RemoteError,
    RPCAccessPolicyBase,
    RPCClient,
    RPCDispatcher,
    RPCDispatcherError,
    RPCVersionCapError,
    UnsupportedVersion,
    expected_exceptions,
    expose,
    get_rpc_client,
    get_rpc_server,
    get_rpc_transport,
)
from relaybus.oslo_messaging.serializer import (
    JsonPayloadSerializer,
    NoOpSerializer,
    Serializer,
)
from relaybus.oslo_messaging.server import (
    ExecutorLoadFailure,
    MessageHandlingServer,
    MessagingServerError,
    ServerListenError,
)
from relaybus.oslo_messaging.target import Target
from relaybus.oslo_messaging.transport import (
    DriverLoadFailure,
    InvalidTransportURL,
    Transport,
    TransportHost,
    TransportOptions,
    TransportURL,
    get_transport,
    set_transport_defaults,
)

__all__ = [
    "ClientSendError", "ConfigurationError", "DefaultRPCAccessPolicy", "DriverLoadFailure",
    "ExecutorLoadFailure", "ExpectedException", "ExplicitRPCAccessPolicy",
    "InvalidTarget", "InvalidTransportURL", "JsonPayloadSerializer",
    "LegacyRPCAccessPolicy", "LoggingErrorNotificationHandler",
    "LoggingNotificationHandler", "MessageDeliveryFailure", "MessageHandlingServer",
    "MessageUndeliverable", "MessagingException", "MessagingServerError",
    "MessagingTimeout", "NoOpSerializer", "NoSuchMethod", "NotificationFilter",
    "NotificationResult", "Notifier", "PublishErrorsHandler", "RPCAccessPolicyBase",
    "RPCClient", "RPCDispatcher", "RPCDispatcherError", "RPCVersionCapError",
    "RemoteError", "Serializer", "ServerListenError", "Target", "Transport",
    "TransportHost", "TransportOptions", "TransportURL", "UnsupportedVersion",
    "expected_exceptions", "expose", "get_batch_notification_listener",
    "get_notification_listener", "get_notification_transport", "get_rpc_client",
    "get_rpc_server", "get_rpc_transport", "get_transport", "set_transport_defaults",
]
