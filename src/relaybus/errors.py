"""Every exception relaybus raises, in one tree.

::

    MessagingError
    ├── MessagingTimeout            (also TimeoutError)   a call got no reply in time
    ├── RemoteError                 the server raised something the client may not rebuild
    ├── NoSuchMethod                (also AttributeError) no endpoint has that method
    ├── UnsupportedVersion          no endpoint serves that namespace and version
    ├── InvalidArguments            (also TypeError) arguments that break the method's types
    ├── InvalidPayload              (also TypeError) a payload that breaks its event's type
    ├── RPCVersionCapError          the request is above the client's version_cap
    ├── MessageUndeliverable        nobody listens on the target: fails at once
    ├── MessageTooLarge             (also ValueError) encoded message over max_message_size
    ├── InvalidTarget               (also ValueError) a Target that cannot be used there
    ├── InvalidTransportURL         (also ValueError) a transport URL that cannot be used
    ├── MalformedMessage            (also ValueError) a received message that cannot be read
    ├── Rejected                    middleware refused the message (subclass it for reasons)
    ├── TransportError              the transport failed (broker gone, channel closed)
    │   ├── ConnectionFailure       (also ConnectionError) cannot reach the broker
    │   └── AuthenticationFailure   bad credentials or vhost: retrying will not help
    └── ServerError                 an RPC server or listener used wrongly (started twice...)

Backend exceptions (aio-pika, nats, ...) never reach users: drivers translate them to
the most specific class here with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any


class MessagingError(Exception):
    """Base class of every relaybus error."""


class MessagingTimeout(MessagingError, TimeoutError):
    """A call got no reply (or no call-monitor heartbeat) within its timeout."""


class RemoteError(MessagingError):
    """The remote endpoint raised an exception the client is not allowed to rebuild.

    Attributes:
        exc_type: the remote exception's class name.
        value: the remote exception's message.
        traceback: the remote traceback, as a list of strings.
        module: the module that defines the remote class.
    """

    def __init__(
        self,
        exc_type: str | None = None,
        value: str | None = None,
        traceback: list[str] | None = None,
        module: str | None = None,
    ) -> None:
        self.exc_type = exc_type
        self.value = value
        self.traceback = list(traceback or [])
        self.module = module
        text = f"Remote error: {exc_type} {value}"
        if self.traceback:
            text += "\n" + "".join(self.traceback)
        super().__init__(text)


class NoSuchMethod(MessagingError, AttributeError):
    """The endpoints on the target have no callable method of that name."""

    def __init__(self, method: str) -> None:
        self.method = method
        super().__init__(f"Endpoint does not support RPC method {method}")


class UnsupportedVersion(MessagingError):
    """No endpoint on the target serves the requested namespace and version."""

    def __init__(self, version: str | None, method: str | None = None) -> None:
        self.version = version
        self.method = method
        super().__init__(
            f"Endpoint does not support RPC version {version}. Attempted method: {method}"
        )


class InvalidArguments(MessagingError, TypeError):
    """Arguments of a request do not match the endpoint method's typed signature.

    Attributes:
        method: the method called.
        argument: the argument at fault (None when the problem is the set of arguments).
        path: where inside the argument, as a JSON path (``$.items[2].id``), if known.
    """

    def __init__(self, message: str, method: str | None = None, argument: str | None = None,
                 path: str | None = None) -> None:
        self.method = method
        self.argument = argument
        self.path = path
        # Travels in the failure's kwargs, so the caller rebuilds the same attributes.
        self.kwargs = {"method": method, "argument": argument, "path": path}
        super().__init__(message)



class InvalidPayload(MessagingError, TypeError):
    """A notification's payload (or priority) does not match what its event type declares.

    Raised by a notifier given ``emits``, before anything is sent.

    Attributes:
        event_type: the notification's event type.
        path: where inside the payload, as a JSON path (``$.items[2].id``), if known.
    """

    def __init__(self, message: str, event_type: str, path: str | None = None) -> None:
        self.event_type = event_type
        self.path = path
        super().__init__(message)

class RPCVersionCapError(MessagingError):
    """A call or cast asked for a version above the client's ``version_cap``."""

    def __init__(self, version: str, version_cap: str) -> None:
        self.version = version
        self.version_cap = version_cap
        super().__init__(
            f"Requested message version, {version} is incompatible. It needs to be equal "
            f"in major version and less than or equal in minor version as the specified "
            f"version cap {version_cap}."
        )


class MessageUndeliverable(MessagingError):
    """No queue or server listens on the target, so the message could not be delivered."""

    def __init__(self, target: Any, reason: str = "nobody is listening") -> None:
        self.target = target
        super().__init__(f"Cannot deliver to {target}: {reason}")


class MessageTooLarge(MessagingError, ValueError):
    """The encoded message is larger than the bus's ``max_message_size``."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"Message of {size} bytes exceeds max_message_size of {limit} bytes")


class InvalidTarget(MessagingError, ValueError):
    """A Target is malformed, or cannot be used for what it was given to."""


class InvalidTransportURL(MessagingError, ValueError):
    """A transport URL cannot be parsed, or names no installed transport."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"Invalid transport URL {url!r}: {reason}")


class MalformedMessage(MessagingError, ValueError):
    """A received message is not one relaybus can read (bad JSON, missing fields...)."""


class Rejected(MessagingError):
    """Middleware refused a message; subclass it to give the reason a type.

    Raised by a middleware (see :mod:`relaybus.middleware`). The caller of a call gets it
    back with its type kept; a rejected cast or notification is counted and logged.
    A subclass with more than a message sets ``self.kwargs`` (a dict of its other
    constructor arguments), so the caller rebuilds it whole.
    """


class TransportError(MessagingError):
    """The transport failed while sending or receiving."""


class ConnectionFailure(TransportError, ConnectionError):
    """The broker cannot be reached, or the connection to it was lost."""


class AuthenticationFailure(ConnectionFailure):
    """The broker refused the credentials or the virtual host; retrying will not help."""


class ServerError(MessagingError):
    """An RPC server or notification listener was used in a way it does not allow."""
