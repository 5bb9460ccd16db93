"""RPC: clients, servers, the dispatcher and its access policies (oslo's names)."""

from relaybus.oslo_messaging.rpc.client import (
    ClientSendError,
    RemoteError,
    RPCClient,
    RPCVersionCapError,
    get_rpc_client,
)
from relaybus.oslo_messaging.rpc.dispatcher import (
    DefaultRPCAccessPolicy,
    ExpectedException,
    ExplicitRPCAccessPolicy,
    LegacyRPCAccessPolicy,
    NoSuchMethod,
    RPCAccessPolicyBase,
    RPCDispatcher,
    RPCDispatcherError,
    UnsupportedVersion,
)
from relaybus.oslo_messaging.rpc.server import (
    RPCServer,
    expected_exceptions,
    expose,
    get_rpc_server,
)
from relaybus.oslo_messaging.rpc.transport import get_rpc_transport

__all__ = [
    "ClientSendError",
    "DefaultRPCAccessPolicy",
    "ExpectedException",
    "ExplicitRPCAccessPolicy",
    "LegacyRPCAccessPolicy",
    "NoSuchMethod",
    "RPCAccessPolicyBase",
    "RPCClient",
    "RPCDispatcher",
    "RPCDispatcherError",
    "RPCServer",
    "RPCVersionCapError",
    "RemoteError",
    "UnsupportedVersion",
    "expected_exceptions",
    "expose",
    "get_rpc_client",
    "get_rpc_server",
    "get_rpc_transport",
]
