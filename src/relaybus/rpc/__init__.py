"""RPC: clients, servers, the dispatcher and remote errors."""

from relaybus.rpc.client import RPCClient
from relaybus.rpc.dispatcher import (
    DefaultRPCAccessPolicy,
    ExplicitRPCAccessPolicy,
    RPCAccessPolicy,
    expose,
)
from relaybus.rpc.server import RPCServer

__all__ = [
    "DefaultRPCAccessPolicy",
    "ExplicitRPCAccessPolicy",
    "RPCAccessPolicy",
    "RPCClient",
    "RPCServer",
    "expose",
]
