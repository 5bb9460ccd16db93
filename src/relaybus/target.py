"""The address of a message: where it goes and which interface it needs."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from relaybus.errors import InvalidTarget

_VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")
_NAME_RE = re.compile(r"^[^\s*#]+$")


def parse_version(version: str) -> tuple[int, int, int]:
    """Split ``"MAJOR.MINOR"`` (or ``"MAJOR.MINOR.REV"``) into a tuple of three ints.

    Raises:
        InvalidTarget: the text is not such a version.
    """
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise InvalidTarget(f"version must be 'MAJOR.MINOR' (e.g. '1.3'), got {version!r}")
    parts = [int(p) for p in version.split(".")]
    return (parts[0], parts[1], parts[2] if len(parts) > 2 else 0)


def version_is_compatible(served: str, requested: str) -> bool:
    """Whether an endpoint at version ``served`` can handle a request for ``requested``.

    Same major version, and the served minor (then revision) at least the requested one:
    the rule oslo.messaging servers apply.
    """
    s_major, s_minor, s_rev = parse_version(served)
    r_major, r_minor, r_rev = parse_version(requested)
    if s_major != r_major or r_minor > s_minor:
        return False
    return not (r_minor == s_minor and r_rev > s_rev)


def _check_name(field: str, value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidTarget(f"Target {field} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidTarget(f"Target {field} must not be empty")
    if not _NAME_RE.match(value):
        raise InvalidTarget(
            f"Target {field} {value!r} must not contain whitespace or the wildcards '*' and '#'"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes, and which interface it expects there.

    Clients send to a target; servers and listeners listen on one. ``topic`` names an
    interface (the servers of a topic share its calls round-robin), ``server`` narrows a
    message to one named server, ``fanout`` sends a cast to every server of the topic,
    ``exchange`` scopes topics (the bus's control exchange when None), and
    ``namespace``/``version`` select the endpoint that must serve a request.

    Targets are immutable and hashable; :meth:`replace` derives a changed copy.

    Raises:
        InvalidTarget: (a ``ValueError``) for a server or fanout without a topic, names
            with whitespace or wildcards, or a version that is not ``MAJOR.MINOR``.
    """

    exchange: str | None = None
    topic: str | None = None
    server: str | None = None
    fanout: bool = False
    namespace: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        for field in ("exchange", "topic", "server", "namespace"):
            _check_name(field, getattr(self, field))
        if not isinstance(self.fanout, bool):
            raise InvalidTarget(f"Target fanout must be a bool, got {self.fanout!r}")
        if self.version is not None:
            parse_version(self.version)
        if self.server is not None and self.topic is None:
            raise InvalidTarget("a Target with a server needs a topic")
        if self.fanout and self.topic is None:
            raise InvalidTarget("a fanout Target needs a topic")
        if self.fanout and self.server is not None:
            raise InvalidTarget("a Target cannot be both fanout and directed to a server")

    def replace(self, **changes: Any) -> Target:
        """Return a copy with the given fields changed (validated like a new Target)."""
        return dataclasses.replace(self, **changes)

    def __str__(self) -> str:
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                 if getattr(self, f.name) not in (None, False)]
        return f"Target({', '.join(shown)})"
