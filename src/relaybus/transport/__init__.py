"""The driver interface and the registry that finds drivers by URL scheme."""

from relaybus.transport.base import (
    Driver,
    IncomingNotification,
    IncomingRequest,
    Subscription,
)
from relaybus.transport.registry import available_schemes, register_transport

__all__ = [
    "Driver",
    "IncomingNotification",
    "IncomingRequest",
    "Subscription",
    "available_schemes",
    "register_transport",
]
