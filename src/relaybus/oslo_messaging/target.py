"""``Target``: oslo.messaging's mutable address object.

Services build targets, then set attributes on them (``target.server = host``) and copy
them by calling them (``target(version='1.3')``), so this is oslo's mutable class, not
relaybus's frozen one; :func:`to_relaybus` converts at the moment something is sent or
listened to, which is also where a malformed target fails.
"""

from __future__ import annotations

from typing import Any

import relaybus

__all__ = ["Target"]

_FIELDS = ("exchange", "topic", "namespace", "version", "server", "fanout")


class Target:
    """Where a message goes and which interface it needs (oslo.messaging's semantics).

    Args:
        exchange: the exchange of the topic (None: the transport's control_exchange).
        topic: the interface's name.
        namespace: the endpoint namespace.
        version: ``MAJOR.MINOR`` the client needs, or the endpoint serves.
        server: one named server of the topic.
        fanout: every server of the topic (casts only).
        legacy_namespaces: further namespaces an endpoint accepts.
    """

    def __init__(self, exchange: str | None = None, topic: str | None = None,
                 namespace: str | None = None, version: str | None = None,
                 server: str | None = None, fanout: bool | None = None,
                 legacy_namespaces: list[str] | None = None) -> None:
        self.exchange = exchange
        self.topic = topic
        self.namespace = namespace
        self.version = version
        self.server = server
        self.fanout = fanout
        self.accepted_namespaces = [namespace, *list(legacy_namespaces or [])]

    def __call__(self, **kwargs: Any) -> Target:
        for name in _FIELDS:
            kwargs.setdefault(name, getattr(self, name))
        return Target(**kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and vars(self) == vars(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        shown = [f"{name}={getattr(self, name)}" for name in _FIELDS if getattr(self, name)]
        return "<Target " + ", ".join(shown) + ">"


def to_relaybus(target: Any, **changes: Any) -> relaybus.Target:
    """The relaybus Target for an oslo-style one (any object with its attributes).

    Raises:
        relaybus.InvalidTarget: the fields break relaybus's rules (whitespace in a name,
            a version that is not ``MAJOR.MINOR``, fanout with a server...).
    """
    fields: dict[str, Any] = {name: getattr(target, name, None) for name in _FIELDS}
    fields.update(changes)
    fields["fanout"] = bool(fields["fanout"])
    for name in ("exchange", "topic", "namespace", "server", "version"):
        if fields[name] == "":
            fields[name] = None
    return relaybus.Target(**fields)
