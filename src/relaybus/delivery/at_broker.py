"""Retries that wait at the broker (``DeliveryPolicy(at_broker=True)``): where to resume.

The attempt count and the first failure travel with the message: in its context
(``relaybus_attempt``, ``relaybus_first_failure``) where the transport rewrites it for the
next delivery (RabbitMQ, memory), or as the broker's own delivery count (JetStream, whose
redelivery cannot change the message: the first failure then reads as the time the
notification was sent). Where a queue also counts the deliveries of one copy (RabbitMQ
quorum queues), those that never settled (a crash, a requeue) are added.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from relaybus import telemetry
from relaybus.delivery.attempts import (
    ATTEMPT_KEY,
    FIRST_FAILURE_KEY,
    DeliveriesExceeded,
    GivenUp,
    Later,
)
from relaybus.delivery.letters import utc_now
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
        attempt = 1
    # deliveries of this copy that never settled (a crash, a requeue) count as attempts
    attempt += (incoming.deliveries or 1) - 1
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


def overdue(policy: DeliveryPolicy, incoming: IncomingNotification) -> GivenUp | None:
    """Why ``incoming`` must be dead-lettered without running: the broker delivered it
    more often than the policy's attempts (earlier runs never finished); else None."""
    attempt, first, _ = resume_point(policy, incoming)
    if attempt <= policy.attempts:
        return None
    now = utc_now()
    return GivenUp(DeliveriesExceeded(
        f"delivered {attempt} times, over the policy's {policy.attempts} attempt(s); "
        f"earlier runs did not finish (did one end the process?)"),
        attempt - 1, first or now, now, permanent=True)


async def settle_each(policy: DeliveryPolicy, failure: Exception,
                      incomings: Sequence[IncomingNotification], *,
                      give_up: Callable[[IncomingNotification, GivenUp], Awaitable[None]],
                      what: str, target: str) -> tuple[list[IncomingNotification],
                                                       list[IncomingNotification]]:
    """After one failed run over several notifications (a batch), decide for each by its
    own attempt count: out of attempts (or a permanent error) it is given up (dead-lettered
    by ``give_up``; the caller acknowledges it), else its next attempt is handed to the
    broker after its own pause.

    Returns (handed to the broker: settled, leave them alone; refused by the broker: the
    caller retries those in process).
    """
    now = utc_now()
    permanent = policy.is_permanent(failure)
    handed: list[IncomingNotification] = []
    refused: list[IncomingNotification] = []
    for incoming in incomings:
        attempt, first, later = resume_point(policy, incoming)
        first = first or now
        if permanent or attempt >= policy.attempts or later is None:
            await give_up(incoming, GivenUp(failure, attempt, first, now, permanent))
            continue
        pause = policy.pause(attempt)
        telemetry.count_delivery("retries", target, type(failure).__name__)
        (handed if await later(pause, attempt, first) else refused).append(incoming)
    if handed or refused:
        LOG.warning("%s: %s: %s; %d retried at the broker, %d in process", what,
                    type(failure).__name__, failure, len(handed), len(refused))
    return handed, refused
