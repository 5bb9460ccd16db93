"""``NotificationFilter``: relaybus's filter under oslo's name and signature."""

from __future__ import annotations

import relaybus

__all__ = ["NotificationFilter"]


class NotificationFilter(relaybus.NotificationFilter):
    """Selects notifications by regexes on context, publisher_id, event_type, metadata
    and payload (``re.match``); set it as an endpoint's ``filter_rule``."""
