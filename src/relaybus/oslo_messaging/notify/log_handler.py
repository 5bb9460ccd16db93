"""``PublishErrorsHandler``: log records sent as ``error_notification`` notifications."""

from __future__ import annotations

import logging
from typing import Any

from oslo_config import cfg

from relaybus.oslo_messaging import _opts
from relaybus.oslo_messaging.notify.notifier import Notifier, get_notification_transport

__all__ = ["LoggingErrorNotificationHandler", "PublishErrorsHandler"]


class LoggingErrorNotificationHandler(logging.Handler):
    """Publishes each record it gets (attach it at ERROR level) as an ERROR notification
    from ``error.publisher``, on ``cfg.CONF``'s notification transport."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        logging.Handler.__init__(self, *args, **kwargs)
        self._transport = get_notification_transport(cfg.CONF)
        self._notifier = Notifier(self._transport, publisher_id="error.publisher")

    def emit(self, record: logging.LogRecord) -> None:
        drivers = self._transport.conf[_opts.NOTIFICATIONS_GROUP].driver
        if "log" in drivers:
            return  # the log driver would log the notification: endless recursion
        self._notifier.error({}, "error_notification", {"error": record.msg})


PublishErrorsHandler = LoggingErrorNotificationHandler
