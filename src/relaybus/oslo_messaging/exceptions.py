"""oslo.messaging's exception classes, each also the matching relaybus error.

So ``except oslo_messaging.MessagingTimeout`` and ``except relaybus.MessagingTimeout`` both
catch a call that timed out through the drop-in::

    MessagingException (relaybus.MessagingError)
    ├── MessagingTimeout          (relaybus.MessagingTimeout, TimeoutError)
    ├── MessageDeliveryFailure    (relaybus.TransportError) the send failed after its retries
    ├── InvalidTarget             (relaybus.InvalidTarget, ValueError)
    └── (transport, server, rpc classes in their own modules, as in oslo.messaging)
    MessageUndeliverable          (relaybus.MessageUndeliverable) nobody takes the message
    ConfigurationError            (Exception) messaging is not configured correctly
"""

from __future__ import annotations

from typing import Any

import relaybus.errors as rb

__all__ = [
    "ConfigurationError",
    "InvalidTarget",
    "MessageDeliveryFailure",
    "MessageUndeliverable",
    "MessagingException",
    "MessagingTimeout",
]


class MessagingException(rb.MessagingError):
    """Base class of the drop-in's exceptions (and a relaybus ``MessagingError``)."""


class MessagingTimeout(MessagingException, rb.MessagingTimeout):
    """A call got no reply in time."""


class MessageDeliveryFailure(MessagingException, rb.TransportError):
    """Sending failed, after the retries asked for."""


class InvalidTarget(MessagingException, rb.InvalidTarget):
    """A target lacks what the operation needs (a topic, a server...)."""

    def __init__(self, msg: str, target: Any) -> None:
        super().__init__(f"{msg}:{target}")
        self.target = target


class MessageUndeliverable(rb.MessageUndeliverable):
    """No queue took a message sent with ``at_least_once`` (the mandatory flag)."""

    def __init__(self, exception: Any, exchange: Any, routing_key: Any, message: Any) -> None:
        Exception.__init__(self)
        self.exception = exception
        self.exchange = exchange
        self.routing_key = routing_key
        self.message = message
        self.target = routing_key

    def __str__(self) -> str:
        return f"Cannot deliver to {self.routing_key}: {self.exception}"


class ConfigurationError(Exception):
    """Messaging is not configured correctly."""
