"""Transport URLs in the oslo.messaging form.

``scheme://[user[:password]@]host[:port][,[user[:password]@]host[:port]...]/[virtual_host][?query]``

Several hosts mean failover in order. Credentials are percent-decoded; a host without
credentials inherits none. ``repr`` never shows a password.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote

from relaybus.errors import InvalidTransportURL

_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*$")


@dataclasses.dataclass(frozen=True, slots=True)
class TransportHost:
    """One broker address of a transport URL."""

    hostname: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    def __repr__(self) -> str:
        secret = ", password='****'" if self.password else ""
        return (f"TransportHost(hostname={self.hostname!r}, port={self.port!r}, "
                f"username={self.username!r}{secret})")


@dataclasses.dataclass(frozen=True, slots=True)
class TransportURL:
    """A parsed transport URL.

    Attributes:
        scheme: the transport name (``memory``, ``rabbit``, ``nats``...), lower-cased.
        hosts: the broker addresses, in failover order (may be empty).
        virtual_host: the path part without its leading slash, or None.
        query: the query options; a repeated key keeps its last value.
    """

    scheme: str
    hosts: tuple[TransportHost, ...] = ()
    virtual_host: str | None = None
    query: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        return f"TransportURL({self.masked()!r})"

    def masked(self) -> str:
        """The URL as text with every password replaced by ``****``."""
        hosts = []
        for host in self.hosts:
            text = ""
            if host.username is not None:
                text = host.username + (":****" if host.password else "") + "@"
            text += _format_hostname(host.hostname or "")
            if host.port is not None:
                text += f":{host.port}"
            hosts.append(text)
        out = f"{self.scheme}://{','.join(hosts)}/"
        if self.virtual_host:
            out += self.virtual_host
        if self.query:
            out += "?" + "&".join(f"{k}={v}" for k, v in self.query.items())
        return out


def _format_hostname(hostname: str) -> str:
    return f"[{hostname}]" if ":" in hostname else hostname


def _parse_host(url: str, text: str) -> TransportHost:
    username = password = None
    if "@" in text:
        credentials, _, text = text.rpartition("@")
        username, sep, pw = credentials.partition(":")
        username = unquote(username)
        password = unquote(pw) if sep else None
    port: int | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise InvalidTransportURL(url, f"unclosed '[' in host {text!r}")
        hostname, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise InvalidTransportURL(url, f"unexpected text after ']' in host {text!r}")
        port_text = rest[1:] if rest else None
    else:
        hostname, sep, port_text = text.partition(":")
        if not sep:
            port_text = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidTransportURL(url, f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    if not hostname and (port is not None or username is not None):
        raise InvalidTransportURL(url, f"host part {text!r} has no host name")
    return TransportHost(hostname=hostname or None, port=port, username=username,
                         password=password)


def parse_url(url: str) -> TransportURL:
    """Parse a transport URL.

    Raises:
        InvalidTransportURL: the text is not a URL of the form above.
    """
    if not isinstance(url, str):
        raise InvalidTransportURL(repr(url), "a transport URL must be a string")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidTransportURL(url, "expected 'scheme://...', e.g. 'memory://' or "
                                       "'rabbit://user:pass@host:5672/'")
    if not _SCHEME_RE.match(scheme):
        raise InvalidTransportURL(url, f"{scheme!r} is not a valid scheme")
    if any(ch.isspace() for ch in url):
        raise InvalidTransportURL(url, "a transport URL must not contain whitespace")
    rest, _, query_text = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    hosts = tuple(_parse_host(url, part) for part in netloc.split(",")) if netloc else ()
    if any(h.hostname is None for h in hosts) and len(hosts) > 1:
        raise InvalidTransportURL(url, "an empty host in a list of hosts")
    hosts = tuple(h for h in hosts if h.hostname is not None or h.username is not None)
    try:
        query = dict(parse_qsl(query_text, keep_blank_values=True, strict_parsing=True)) \
            if query_text else {}
    except ValueError as exc:
        raise InvalidTransportURL(url, f"malformed query {query_text!r}") from exc
    return TransportURL(
        scheme=scheme.lower(),
        hosts=hosts,
        virtual_host=unquote(path) if slash and path else None,
        query=query,
    )
