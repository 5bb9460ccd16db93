"""Which notifications a listener endpoint wants: regexes on their fields."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_Pattern = re.Pattern[str]


def _compile(field: str, regex: str | None) -> _Pattern | None:
    if regex is None:
        return None
    if not isinstance(regex, str):
        raise TypeError(f"NotificationFilter {field} must be a regex string, got {regex!r}")
    try:
        return re.compile(regex)
    except re.error as exc:
        raise ValueError(f"NotificationFilter {field} regex {regex!r} is invalid: {exc}") from exc


def _compile_map(field: str, regexes: Mapping[str, str] | None) -> dict[str, _Pattern]:
    if regexes is None:
        return {}
    if not isinstance(regexes, Mapping):
        raise TypeError(f"NotificationFilter {field} must map keys to regex strings")
    return {key: _compile(f"{field}[{key!r}]", regex)  # type: ignore[misc]
            for key, regex in regexes.items()}


def _mismatch(value: Any, regex: _Pattern | None) -> bool:
    if regex is None:
        return False
    return not isinstance(value, str) or regex.match(value) is None


class NotificationFilter:
    """Selects notifications by regexes (``re.match``, from the start of the text).

    Args:
        publisher_id: regex on the publisher id.
        event_type: regex on the event type.
        context: ``{key: regex}`` on entries of the context.
        metadata: ``{key: regex}`` on ``message_id`` / ``timestamp``.
        payload: ``{key: regex}`` on top-level entries of a dict payload.

    A notification matches when every regex given matches; a missing key or a value that
    is not text does not match.
    """

    def __init__(self, context: Mapping[str, str] | None = None,
                 publisher_id: str | None = None, event_type: str | None = None,
                 metadata: Mapping[str, str] | None = None,
                 payload: Mapping[str, str] | None = None) -> None:
        self._publisher_id = _compile("publisher_id", publisher_id)
        self._event_type = _compile("event_type", event_type)
        self._context = _compile_map("context", context)
        self._metadata = _compile_map("metadata", metadata)
        self._payload = _compile_map("payload", payload)

    @staticmethod
    def _map_mismatch(data: Any, regexes: dict[str, _Pattern]) -> bool:
        if not regexes:
            return False
        if not isinstance(data, Mapping):
            return True
        return any(_mismatch(data.get(key), regex) for key, regex in regexes.items())

    def match(self, ctxt: Any, publisher_id: str | None, event_type: str,
              metadata: Mapping[str, Any], payload: Any) -> bool:
        """Whether the notification passes the filter."""
        return not (
            _mismatch(publisher_id, self._publisher_id)
            or _mismatch(event_type, self._event_type)
            or self._map_mismatch(ctxt, self._context)
            or self._map_mismatch(metadata, self._metadata)
            or self._map_mismatch(payload, self._payload)
        )
