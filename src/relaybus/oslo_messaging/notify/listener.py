"""Notification listeners: ``get_notification_listener`` and the batch variant.

Endpoints are oslo's: a method per priority, ``(ctxt, publisher_id, event_type, payload,
metadata)`` (a list of message dicts for batch listeners), an optional ``filter_rule``,
and ``NotificationResult.REQUEUE`` honoured when ``allow_requeue`` is set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import relaybus
from relaybus.oslo_messaging.exceptions import InvalidTarget
from relaybus.oslo_messaging.serializer import bridge
from relaybus.oslo_messaging.server import MessageHandlingServer
from relaybus.oslo_messaging.target import Target, to_relaybus
from relaybus.sync import SyncConsumer

__all__ = ["BatchNotificationServer", "NotificationServer", "NotificationServerBase",
           "get_batch_notification_listener", "get_notification_listener"]


class NotificationServerBase(MessageHandlingServer):
    """What plain and batch listeners share."""

    def __init__(self, transport: Any, targets: Sequence[Target], endpoints: Sequence[Any],
                 executor: str | None = None, serializer: Any = None,
                 allow_requeue: bool = False, pool: str | None = None) -> None:
        super().__init__(transport, executor)
        self.targets = list(targets)
        self.endpoints = list(endpoints)
        self.serializer = serializer
        self.allow_requeue = allow_requeue
        self.pool = pool

    def _listen_target(self) -> Any:
        return self.targets

    def _relaybus_targets(self) -> list[relaybus.Target]:
        out = []
        for target in self.targets:
            if not target.topic:
                raise InvalidTarget("A target must have topic specified", target)
            try:
                out.append(to_relaybus(target, server=None, fanout=False))
            except relaybus.InvalidTarget as exc:
                raise InvalidTarget(str(exc), target) from exc
        return out


class NotificationServer(NotificationServerBase):
    """Hands each notification to the endpoints of its priority."""

    def _make_consumer(self, pool_size: int) -> SyncConsumer:
        return self.transport.bus.notification_listener(
            self._relaybus_targets(), self.endpoints, self.pool,
            serializer=bridge(self.serializer), allow_requeue=self.allow_requeue,
            threads=pool_size, max_concurrency=pool_size, drain_timeout=None)


class BatchNotificationServer(NotificationServerBase):
    """Hands notifications over in lists of up to ``batch_size``."""

    def __init__(self, transport: Any, targets: Sequence[Target], endpoints: Sequence[Any],
                 executor: str | None = None, serializer: Any = None,
                 allow_requeue: bool = False, pool: str | None = None,
                 batch_size: int | None = None, batch_timeout: float | None = None) -> None:
        super().__init__(transport, targets, endpoints, executor, serializer, allow_requeue,
                         pool)
        self.batch_size = batch_size or 1
        self.batch_timeout = batch_timeout

    def _make_consumer(self, pool_size: int) -> SyncConsumer:
        return self.transport.bus.batch_notification_listener(
            self._relaybus_targets(), self.endpoints, self.batch_size,
            self.batch_timeout or None, self.pool, serializer=bridge(self.serializer),
            allow_requeue=self.allow_requeue, threads=pool_size, drain_timeout=None)


def get_notification_listener(transport: Any, targets: Sequence[Target],
                              endpoints: Sequence[Any], executor: str | None = None,
                              serializer: Any = None, allow_requeue: bool = False,
                              pool: str | None = None) -> NotificationServer:
    """A listener (not started) for ``targets``; ``pool`` shares the work with the
    listeners of the same pool."""
    return NotificationServer(transport, targets, endpoints, executor, serializer,
                              allow_requeue, pool)


def get_batch_notification_listener(transport: Any, targets: Sequence[Target],
                                    endpoints: Sequence[Any], executor: str | None = None,
                                    serializer: Any = None, allow_requeue: bool = False,
                                    pool: str | None = None, batch_size: int | None = None,
                                    batch_timeout: float | None = None
                                    ) -> BatchNotificationServer:
    """A listener that hands over lists of notifications: when ``batch_size`` wait, or
    ``batch_timeout`` seconds after the first of them arrived."""
    return BatchNotificationServer(transport, targets, endpoints, executor, serializer,
                                   allow_requeue, pool, batch_size, batch_timeout)
