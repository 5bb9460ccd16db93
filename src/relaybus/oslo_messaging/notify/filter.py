"""``NotificationFilter``: relaybus's filter under oslo's name and signature."""

from __future__ import annotations

from typing import Any

import relaybus

__all__ = ["NotificationFilter"]


class NotificationFilter(relaybus.NotificationFilter):
    """Selects notifications by regexes on context, publisher_id, event_type, metadata
    and payload (``re.match``); set it as an endpoint's ``filter_rule``.

    As in oslo.messaging, the context, metadata and payload are read with ``key in data``
    and ``data[key]``, so a context object that is not a mapping but supports both (as
    many request contexts do) is filtered like a dict.
    """

    @staticmethod
    def _map_mismatch(data: Any, regexes: dict[str, Any]) -> bool:
        for key, regex in regexes.items():
            if key not in data:
                return True
            value = data[key]
            if not isinstance(value, str) or not regex.match(value):
                return True
        return False
