"""Log lines for long-running commands: readable text, or one JSON object per line."""

from __future__ import annotations

import json
import logging
import time

# Attributes relaybus puts on its log records (``extra=``) that belong in structured output.
FIELDS = ("msg_id", "unique_id", "method", "topic", "server", "message_id", "event_type")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and relaybus's ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                 + f".{int(record.msecs):03d}Z",
                 "level": record.levelname.lower(), "logger": record.name,
                 "message": record.getMessage()}
        entry.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, fmt: str) -> None:
    """Send relaybus's logs to standard error at ``level``, as text or JSON."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
