"""Notifications: notifier, drivers, listeners, filters, logging handlers (oslo's names)."""

from relaybus.oslo_messaging.notify.dispatcher import NotificationResult
from relaybus.oslo_messaging.notify.filter import NotificationFilter
from relaybus.oslo_messaging.notify.listener import (
    get_batch_notification_listener,
    get_notification_listener,
)
from relaybus.oslo_messaging.notify.log_handler import (
    LoggingErrorNotificationHandler,
    PublishErrorsHandler,
)
from relaybus.oslo_messaging.notify.logger import LoggingNotificationHandler
from relaybus.oslo_messaging.notify.notifier import Notifier, get_notification_transport

__all__ = [
    "LoggingErrorNotificationHandler",
    "LoggingNotificationHandler",
    "NotificationFilter",
    "NotificationResult",
    "Notifier",
    "PublishErrorsHandler",
    "get_batch_notification_listener",
    "get_notification_listener",
    "get_notification_transport",
]
