"""Who may subscribe and who may publish through the gateway's HTTP endpoints.

Subscribing is open unless a subscribe token is set. Publishing needs the publish token, and
is impossible when none is set. A publish token also grants subscribing. A token comes as
``Authorization: Bearer <token>`` or, for browsers (which cannot set headers on a WebSocket
or an EventSource), as ``?token=<token>``. A token that matches nothing is refused even
where none is needed: a client with a wrong token should hear about it, not be silently
let in with fewer rights than it meant to have.

Tokens never reach a log: the HTTP server logs request lines with their query string (at
INFO) and every header (at DEBUG), so :class:`RedactTokens` masks ``?token=`` values and
``Authorization`` headers in its records.
"""

from __future__ import annotations

import enum
import hmac
import logging
import re
import urllib.parse
from collections.abc import Mapping
from typing import Protocol

# A query parameter (its key is checked once percent-decoded, as the server decodes it:
# ``?%74oken=`` is a token too); an Authorization header's credentials (its scheme kept).
_SECRET = re.compile(r"(?i)([?&][^=&\s\"'#?]*=)([^&\s\"'#]*)"
                     r"|(authorization:\s*(?:[\w-]+\s+(?=\S))?)\S+")
SERVER_LOGGERS = ("uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def redact(text: str) -> str:
    """``text`` with token values masked: ``?token=***``, ``authorization: Bearer ***``."""
    return _SECRET.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    if match.group(3) is not None:
        return match.group(3) + "***"
    key = urllib.parse.unquote(match.group(1)[1:-1], errors="replace")
    return match.group(1) + "***" if key.lower() == "token" else match.group(0)


class RedactTokens(logging.Filter):
    """A log filter that masks tokens in a record's message (see :func:`redact`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


_REDACT = RedactTokens()


def redact_server_logs() -> None:
    """Mask tokens in everything the HTTP server logs (idempotent, for the whole process:
    those loggers are the server library's own)."""
    for name in SERVER_LOGGERS:
        logging.getLogger(name).addFilter(_REDACT)


class Access(enum.IntEnum):
    """What a request may do."""

    NONE = 0
    SUBSCRIBE = 1
    PUBLISH = 2


class Params(Protocol):
    """Query parameters: anything with ``get``."""

    def get(self, key: str, default: str | None = None, /) -> str | None: ...


class BadToken(PermissionError):
    """A token was presented and matches no configured token (or one is required)."""


def _same(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


class Tokens:
    """The gateway's tokens.

    Args:
        subscribe: required to subscribe (None: subscribing is open).
        publish: required to publish (None: nobody can publish through the gateway).
    """

    def __init__(self, subscribe: str | None = None, publish: str | None = None) -> None:
        for name, value in (("subscribe", subscribe), ("publish", publish)):
            if value is not None and (not value or any(c.isspace() for c in value)):
                raise ValueError(f"the {name} token must be non-empty, without spaces")
        self.subscribe = subscribe
        self.publish = publish

    @staticmethod
    def presented(headers: Mapping[str, str], query: Params) -> str | None:
        """The token a request carries, from its Authorization header or ``?token=``."""
        auth = headers.get("authorization")
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip()
            raise BadToken("the Authorization header must be 'Bearer <token>'")
        return query.get("token") or None

    def access(self, token: str | None) -> Access:
        """What ``token`` allows.

        Raises:
            BadToken: a token that matches nothing, or none where subscribing needs one.
        """
        if token is None:
            if self.subscribe is not None:
                raise BadToken("this gateway needs a token to subscribe")
            return Access.SUBSCRIBE
        if _same(token, self.publish):
            return Access.PUBLISH
        if _same(token, self.subscribe):
            return Access.SUBSCRIBE
        raise BadToken("the token is not valid for this gateway")
