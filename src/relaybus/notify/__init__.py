"""Notifications: the Notifier, listeners and filters."""

from relaybus.notify.filters import NotificationFilter
from relaybus.notify.listener import (
    BatchNotificationListener,
    NotificationListener,
    NotificationResult,
)
from relaybus.notify.notifier import Notifier

__all__ = [
    "BatchNotificationListener",
    "NotificationFilter",
    "NotificationListener",
    "NotificationResult",
    "Notifier",
]
