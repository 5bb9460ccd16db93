"""The ``test`` notification driver's store, where oslo keeps it (services' tests read it)."""

from __future__ import annotations

from typing import Any

NOTIFICATIONS: list[tuple[Any, dict[str, Any], str, Any]] = []


def reset() -> None:
    """Forget the notifications kept so far."""
    NOTIFICATIONS.clear()
