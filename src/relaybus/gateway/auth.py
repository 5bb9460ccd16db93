"""Who may subscribe and who may publish through the gateway's HTTP endpoints, and to what.

Subscribing is open unless a subscribe token is set. Publishing needs the publish token, and
is impossible when none is set. A publish token also grants subscribing. A token comes as
``Authorization: Bearer <token>`` or, for browsers (which cannot set headers on a WebSocket
or an EventSource), as ``?token=<token>``. A token that matches nothing is refused even
where none is needed: a client with a wrong token should hear about it, not be silently
let in with fewer rights than it meant to have.

Tokens may also be scoped to topic filters, separately for subscribing and for publishing
(as Mosquitto's ACLs and Mercure's JWT selectors do), in a TOML tokens file (see
:func:`load_tokens_file`). A subscription filter that overlaps the scope nowhere is refused;
one that reaches beyond it (``#`` with a scope of ``nova/#``) is narrowed to the scope;
publishing to a topic outside the scope is refused. A tokens file closes the gateway to
clients without a token, unless its ``[anonymous]`` table opens part of it.

Tokens never reach a log: the HTTP server logs request lines with their query string (at
INFO) and every header (at DEBUG), so :class:`RedactTokens` masks ``?token=`` values and
``Authorization`` headers in its records.
"""

from __future__ import annotations

import collections
import enum
import hmac
import logging
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from relaybus.gateway.topics import BadFilter, FilterSet, NarrowedFilterSet, TopicFilter

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


class OutOfScope(PermissionError):
    """A subscription or a publish reaches outside what the token allows.

    Attributes:
        reason: ``subscribe-out-of-scope`` or ``publish-out-of-scope``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _same(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


EVERYTHING = FilterSet.parse(["#"])


def _scope(texts: Any, where: str) -> FilterSet:
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"{where} must be a non-empty list of topic filters")
    try:
        return FilterSet(TopicFilter.parse(text) for text in texts)
    except BadFilter as exc:
        raise ValueError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Grant:
    """What one token (or no token) allows.

    Attributes:
        name: for logs and errors (never the secret).
        subscribe: the filters it may subscribe within (None: it may not subscribe).
        publish: the topics it may publish to, as filters (None: it may not publish).
    """

    name: str
    subscribe: FilterSet | None
    publish: FilterSet | None = None

    @property
    def access(self) -> Access:
        if self.publish is not None:
            return Access.PUBLISH
        return Access.SUBSCRIBE if self.subscribe is not None else Access.NONE

    @property
    def scoped(self) -> bool:
        """Whether its subscribe scope is narrower than everything."""
        return self.subscribe is not None and not self.subscribe.everything

    def subscription(self, filters: FilterSet) -> FilterSet:
        """The filters a subscription gets: ``filters`` as asked when the scope covers them
        all, else narrowed to the scope.

        Raises:
            BadToken: this token may not subscribe at all.
            OutOfScope: a filter shares no topic with the scope.
        """
        scope = self.subscribe
        if scope is None:
            raise BadToken(f"{self.name} may not subscribe")
        if scope.everything:
            return filters
        for wanted in filters.filters:
            if not any(allowed.overlaps(wanted) for allowed in scope.filters):
                raise OutOfScope("subscribe-out-of-scope",
                                 f"topic filter {wanted.text!r} is outside what {self.name} "
                                 f"may subscribe to ({', '.join(scope.texts)})")
        if all(any(allowed.covers(wanted) for allowed in scope.filters)
               for wanted in filters.filters):
            return filters
        return NarrowedFilterSet(filters, scope)

    def check_publish(self, topics: Sequence[str]) -> None:
        """Check that this token may publish to every topic (a batch is all or nothing).

        Raises:
            OutOfScope: a topic is outside the publish scope (the first one is named).
        """
        scope = self.publish
        if scope is None:
            raise OutOfScope("publish-out-of-scope", f"{self.name} may not publish")
        for index, topic in enumerate(topics):
            if not scope.matches(topic, topic.split("/")):
                where = f"event {index}: " if len(topics) > 1 else ""
                raise OutOfScope("publish-out-of-scope",
                                 f"{where}topic {topic!r} is outside what {self.name} may "
                                 f"publish to ({', '.join(scope.texts)})")


@dataclass(frozen=True)
class ScopedToken:
    """One token of a tokens file."""

    secret: str
    grant: Grant


def _check_secret(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ValueError(f"{where} must be non-empty, without spaces")
    return value


def _entry(index: int, entry: Any, environ: Mapping[str, str]) -> ScopedToken:
    where = f"token {index + 1}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a [[token]] table")
    unknown = set(entry) - {"name", "token", "token_env", "subscribe", "publish"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; use name, "
                         "token or token_env, subscribe, publish")
    name = entry.get("name", where)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: 'name' must be a non-empty string")
    where = f"token {name!r}"
    if ("token" in entry) == ("token_env" in entry):
        raise ValueError(f"{where}: give exactly one of 'token' and 'token_env'")
    if "token_env" in entry:
        variable = entry["token_env"]
        secret = environ.get(variable) if isinstance(variable, str) else None
        if not secret:
            raise ValueError(f"{where}: the environment variable {variable!r} is not set")
    else:
        secret = entry["token"]
    if "subscribe" not in entry and "publish" not in entry:
        raise ValueError(f"{where}: allows nothing; give 'subscribe' and/or 'publish' filters")
    grant = Grant(name,
                  _scope(entry["subscribe"], f"{where}: 'subscribe'")
                  if "subscribe" in entry else None,
                  _scope(entry["publish"], f"{where}: 'publish'")
                  if "publish" in entry else None)
    return ScopedToken(_check_secret(secret, f"{where}: the token"), grant)


@dataclass(frozen=True)
class TokensFile:
    """What a tokens file holds: scoped tokens, and what clients without one may do."""

    tokens: tuple[ScopedToken, ...]
    anonymous: Grant | None


def load_tokens_file(path: str | Path, environ: Mapping[str, str] | None = None) -> TokensFile:
    """Read a TOML tokens file::

        [[token]]
        name = "nova-ui"          # in errors and /stats, never the secret
        token_env = "NOVA_UI_TOKEN"   # or: token = "..."
        subscribe = ["nova/#"]    # filters it may subscribe within (absent: none)
        publish = ["nova/#"]      # topics it may publish to (absent: none)

        [anonymous]               # clients without a token (absent: nothing)
        subscribe = ["public/#"]

    Raises:
        ValueError: unreadable, not TOML, or an entry that is wrong (named in the message).
    """
    environ = os.environ if environ is None else environ
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"tokens file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"tokens file {path}: not valid TOML ({exc})") from None
    try:
        unknown = set(data) - {"token", "anonymous"}
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))}; use [[token]] "
                             "and [anonymous]")
        entries = data.get("token", [])
        if not isinstance(entries, list):
            raise ValueError("'token' must be an array of tables: [[token]]")
        tokens = tuple(_entry(index, entry, environ) for index, entry in enumerate(entries))
        anonymous = None
        if "anonymous" in data:
            table = data["anonymous"]
            if not isinstance(table, dict) or set(table) != {"subscribe"}:
                raise ValueError("[anonymous] holds 'subscribe' only (publishing always "
                                 "needs a token)")
            anonymous = Grant("a client without a token",
                              _scope(table["subscribe"], "[anonymous] 'subscribe'"))
    except ValueError as exc:
        raise ValueError(f"tokens file {path}: {exc}") from None
    return TokensFile(tokens, anonymous)


class Tokens:
    """The gateway's tokens.

    Args:
        subscribe: required to subscribe (None: subscribing is open, unless ``scoped``).
        publish: required to publish (None: nobody can publish, unless ``scoped`` allows).
        scoped: tokens limited to topic filters, from a tokens file; with it, clients
            without a token get its ``anonymous`` grant (None: nothing).

    Raises:
        ValueError: an empty token, one with spaces, or the same token twice.
    """

    def __init__(self, subscribe: str | None = None, publish: str | None = None,
                 scoped: TokensFile | None = None) -> None:
        for name, value in (("subscribe", subscribe), ("publish", publish)):
            if value is not None:
                _check_secret(value, f"the {name} token")
        self.subscribe = subscribe
        self.publish = publish
        self.scoped = scoped.tokens if scoped is not None else ()
        secrets = [s for s in (subscribe, publish) if s is not None]
        secrets += [t.secret for t in self.scoped]
        if len(set(secrets)) != len(secrets):
            raise ValueError("the same token is given twice (each token must be distinct)")
        if scoped is not None:
            self._anonymous = scoped.anonymous
        elif subscribe is None:
            self._anonymous = Grant("a client without a token", EVERYTHING)
        else:
            self._anonymous = None
        self.refused: collections.Counter[str] = collections.Counter()

    @property
    def can_publish(self) -> bool:
        """Whether any token may publish (else the gateway need not publish at all)."""
        return self.publish is not None or any(t.grant.publish for t in self.scoped)

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

    def grant(self, token: str | None) -> Grant:
        """What ``token`` (None: no token) allows.

        Raises:
            BadToken: a token that matches nothing, or none where subscribing needs one.
        """
        if token is None:
            if self._anonymous is None:
                raise BadToken("this gateway needs a token to subscribe")
            return self._anonymous
        if _same(token, self.publish):
            return Grant("the publish token", EVERYTHING, EVERYTHING)
        if _same(token, self.subscribe):
            return Grant("the subscribe token", EVERYTHING)
        found = None
        for scoped in self.scoped:  # all compared, so the time says nothing of which
            if _same(token, scoped.secret):
                found = scoped.grant
        if found is None:
            raise BadToken("the token is not valid for this gateway")
        return found

    def access(self, token: str | None) -> Access:
        """What ``token`` allows, broadly (see :meth:`grant` for the scopes).

        Raises:
            BadToken: a token that matches nothing, or none where subscribing needs one.
        """
        return self.grant(token).access

    def count(self, reason: str) -> None:
        """Count one refused request (``bad-token``, ``forbidden``, ``*-out-of-scope``)."""
        self.refused[reason] += 1

    def stats(self) -> dict[str, Any]:
        """For /stats: requests refused, by reason; how many scoped tokens there are (not
        their names: any subscriber may read /stats)."""
        return {"refused": dict(self.refused), "scoped_tokens": len(self.scoped)}
