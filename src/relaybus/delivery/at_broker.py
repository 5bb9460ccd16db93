"""Retries that wait at the broker (``DeliveryPolicy(at_broker=True)``): where to resume.

The attempt count and the first failure travel with the message: in its context
(``relaybus_attempt``, ``relaybus_first_failure``) where the transport rewrites it for the
next delivery (RabbitMQ, memory), or as the broker's own delivery count (JetStream, whose
redelivery cannot change the message: the first failure then reads as the time the
notification was sent).
"""

from __future__ import annotations

import logging

from relaybus.delivery.attempts import ATTEMPT_KEY, FIRST_FAILURE_KEY, Later
from relaybus.delivery.policy import DeliveryPolicy
from relaybus.errors import MessagingError
from relaybus.transport.base import IncomingNotification

LOG = logging.getLogger("relaybus.delivery")


def _sent_at(timestamp: str) -> str | None:
    """An oslo timestamp (``2026-12-06 03:04:05.123456``) as ISO 8601 UTC."""
    if len(timestamp) < 19:
        return None
    date, _, time = timestamp.partition(" ")
    fraction = time.partition(".")[2]
    return f"{date}T{time[:8]}.{(fraction + '000000')[:6]}Z"


def resume_point(policy: DeliveryPolicy,
                 incoming: IncomingNotification) -> tuple[int, str | None, Later | None]:
    """(attempt, first failure, later) to run ``incoming``'s handlers with."""
    if not policy.at_broker:
        return 1, None, None
    context = incoming.notification.context
    attempt = context.get(ATTEMPT_KEY)
    first = context.get(FIRST_FAILURE_KEY)
    if not isinstance(attempt, int) or attempt < 1:
        attempt = incoming.deliveries or 1
    if not isinstance(first, str):
        first = _sent_at(incoming.notification.timestamp) if attempt > 1 else None

    async def later(pause: float, failed: int, first_failure: str) -> bool:
        try:
            return await incoming.retry_later(pause, {ATTEMPT_KEY: failed + 1,
                                                      FIRST_FAILURE_KEY: first_failure})
        except MessagingError as exc:  # the broker did not take it: wait here instead
            LOG.warning("could not hand a retry to the broker (%s); waiting in process", exc)
            return False

    return attempt, first, later
