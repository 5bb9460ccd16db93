"""A server's casts under a delivery policy: retried, then dead-lettered with the reason.

Calls never come here: a call is at-most-once (oslo.messaging's rule) and its caller gets
the error. A cast has nobody to tell, so a failure is retried as the policy says and then
dead-lettered; a request that cannot be dispatched at all (no such method, unsupported
version, arguments that do not fit) is a permanent failure and dead-letters at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from relaybus.delivery.attempts import (
    ATTEMPT_KEY,
    FIRST_FAILURE_KEY,
    GivenUp,
    Later,
    RetryScheduled,
    run_with_policy,
)
from relaybus.delivery.delay import check_transport_can_delay
from relaybus.delivery.letters import (
    DeadLetterReason,
    cast_letter,
    replays_of,
    send_letter,
    utc_now,
)
from relaybus.delivery.policy import DeliveryPolicy
from relaybus.errors import MessagingError
from relaybus.message import Request, new_unique_id
from relaybus.target import Target
from relaybus.transport.base import Driver

LOG = logging.getLogger("relaybus.rpc.server")


class CastDelivery:
    """Runs a server's casts under its policy (None: one run, a failure is logged)."""

    def __init__(self, driver: Driver, target: Target, policy: DeliveryPolicy | None) -> None:
        if policy is not None and not isinstance(policy, DeliveryPolicy):
            raise TypeError(f"delivery must be a relaybus.DeliveryPolicy, got {policy!r}")
        self.policy = policy
        self._driver = driver
        self._target = target

    async def run(self, request: Request, run: Callable[[], Awaitable[Any]]) -> Any:
        """Run a cast's method; failures are retried as the policy says.

        Raises:
            GivenUp: the cast failed for good (see :meth:`failed`).
        """
        if self.policy is None:
            return await run()
        attempt, first, later = 1, None, None
        if self.policy.at_broker:
            attempt, first, later = self._resume(request)
        try:
            return await run_with_policy(
                self.policy, run, what=f"cast {request.method} on {self._target.topic} failed",
                target=self._target.topic or "",
                log_extra={"unique_id": request.unique_id, "method": request.method},
                attempt=attempt, first_failure=first, later=later)
        except RetryScheduled:  # handed to the broker as a delayed cast
            return None

    def _resume(self, request: Request) -> tuple[int, str | None, Later]:
        """Where an earlier delivery of a cast left off, and how to hand the next attempt
        to the broker: a delayed cast (``cast_later``) to any server of the topic."""
        attempt = request.context.get(ATTEMPT_KEY)
        first = request.context.get(FIRST_FAILURE_KEY)
        retry_to = Target(exchange=self._target.exchange, topic=self._target.topic)

        async def later(pause: float, failed: int, first_failure: str) -> bool:
            again = msgspec.structs.replace(request, context={
                **request.context, ATTEMPT_KEY: failed + 1, FIRST_FAILURE_KEY: first_failure})
            try:
                check_transport_can_delay(self._driver, pause)
                await self._driver.cast_later(retry_to, again, pause)
            except (MessagingError, ValueError) as exc:
                LOG.warning("could not hand a cast's retry to the broker (%s); waiting in "
                            "process", exc)
                return False
            return True

        return (attempt if isinstance(attempt, int) and attempt > 0 else 1,
                first if isinstance(first, str) else None, later)

    async def failed(self, request: Request, exc: BaseException,
                     log_extra: Mapping[str, Any]) -> None:
        """A cast failed for good: log it, and dead-letter it where the policy says."""
        if isinstance(exc, GivenUp):
            failure = exc
        else:  # with no policy, or before its method ran: not worth another run
            now = utc_now()
            cause = exc if isinstance(exc, Exception) else Exception(str(exc))
            failure = GivenUp(cause, 1, now, now, permanent=self.policy is not None)
        cause = failure.cause
        LOG.warning("cast %s on %s failed: %s: %s%s", request.method, self._target.topic,
                    type(cause).__name__, cause,
                    f" (after {failure.attempts} attempts)" if failure.attempts > 1 else "",
                    extra=dict(log_extra))
        if self.policy is None or self.policy.dead_letter is None:
            return
        reason = DeadLetterReason(
            kind="cast", error_type=type(cause).__name__, error_message=str(cause),
            attempts=failure.attempts, first_failure=failure.first_failure,
            last_failure=failure.last_failure, topic=self._target.topic or "",
            exchange=self._driver.exchange_for(self._target),
            message_id=request.unique_id or new_unique_id(), handler=request.method,
            permanent=failure.permanent, replays=replays_of(request.context))
        await send_letter(self._driver, self.policy.dead_letter,
                          cast_letter(request, self._target, reason), reason)
