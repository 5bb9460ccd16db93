"""``LoggingNotificationHandler``: Python logging records sent as notifications."""

from __future__ import annotations

import logging
from typing import Any

from oslo_config import cfg

from relaybus.oslo_messaging.notify.notifier import Notifier, get_notification_transport

__all__ = ["LoggingNotificationHandler"]


class LoggingNotificationHandler(logging.Handler):
    """Sends each log record as a ``logrecord`` notification at the record's level.

    Usable from a logging configuration file (``args=('rabbit:///',)``). Reads the
    notification options from :attr:`CONF` (``cfg.CONF``; subclass to use another).
    """

    CONF = cfg.CONF

    def __init__(self, url: str, publisher_id: str | None = None, driver: str | None = None,
                 topic: str | list[str] | None = None, serializer: Any = None) -> None:
        topics = topic if topic is None or isinstance(topic, list) else [topic]
        self.notifier = Notifier(get_notification_transport(self.CONF, url), publisher_id,
                                 driver, serializer() if serializer else None, topics=topics)
        logging.Handler.__init__(self)

    def emit(self, record: logging.LogRecord) -> None:
        method = getattr(self.notifier, record.levelname.lower(), None)
        if method is None:
            return
        method(None, "logrecord", {
            "name": record.name, "levelno": record.levelno, "levelname": record.levelname,
            "exc_info": record.exc_info, "pathname": record.pathname,
            "lineno": record.lineno, "msg": record.getMessage(),
            "funcName": record.funcName, "thread": record.thread,
            "processName": record.processName, "process": record.process,
            "extra": getattr(record, "extra", None)})
