"""Running a handler under a policy: the retry loop, once for every listener and server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from relaybus import telemetry
from relaybus.delivery.letters import utc_now
from relaybus.delivery.policy import DeliveryPolicy

LOG = logging.getLogger("relaybus.delivery")
T = TypeVar("T")

#: context members a broker-side retry carries to the next delivery
ATTEMPT_KEY = "relaybus_attempt"
FIRST_FAILURE_KEY = "relaybus_first_failure"
#: ``later(pause, failed_attempt, first_failure)``: True once the broker holds the retry
Later = Callable[[float, int, str], Awaitable[bool]]


class DeliveriesExceeded(Exception):
    """The broker delivered a message more often than the policy's attempts (a run that
    ended the process, a handler slower than the broker's ack wait)."""


class RetryScheduled(Exception):
    """The next attempt waits at the broker: this delivery is settled, stop here."""


class GivenUp(Exception):
    """The handler failed for good: out of attempts, or a permanent error.

    Attributes:
        cause: the last exception.
        attempts: how many runs were made.
        first_failure, last_failure: ISO 8601 UTC times.
        permanent: the cause was one of the policy's permanent errors.
    """

    def __init__(self, cause: Exception, attempts: int, first_failure: str, last_failure: str,
                 permanent: bool) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.attempts = attempts
        self.first_failure = first_failure
        self.last_failure = last_failure
        self.permanent = permanent


async def run_with_policy(policy: DeliveryPolicy, run: Callable[[], Awaitable[T]], *,
                          what: str | Callable[[], str], target: str,
                          log_extra: Mapping[str, Any] | Callable[[], Mapping[str, Any]]
                          | None = None,
                          attempt: int = 1, first_failure: str | None = None,
                          later: Later | None = None) -> T:
    """Run ``run()`` until it returns, pausing between failed runs as ``policy`` says.

    Args:
        policy: attempts, pauses and permanent errors.
        run: one run of the handler.
        what: the start of the retry log line (``notification handler X failed on E``),
            or a function making it (called only when a run fails: not per message).
        target: the topic counted in the retry metric.
        log_extra: ids for the log lines (or a function making them, as ``what``).
        attempt, first_failure: where an earlier delivery left off (a broker-side retry).
        later: hands the next attempt to the broker instead of waiting here; when it
            returns True, :class:`RetryScheduled` is raised.

    Raises:
        GivenUp: the last run failed, or a run failed with a permanent error.
        RetryScheduled: ``later`` took the next attempt.
        asyncio.CancelledError: the consumer stopped (the message goes back to the broker).
    """
    first = first_failure
    if attempt > policy.attempts:  # counted by the broker: earlier runs never finished
        now = utc_now()
        raise GivenUp(DeliveriesExceeded(
            f"delivered {attempt} times, over the policy's {policy.attempts} attempt(s); "
            f"earlier runs did not finish (did one end the process?)"),
            attempt - 1, first or now, now, permanent=True)
    last = policy.attempts
    for current in range(attempt, last + 1):
        try:
            return await run()
        except Exception as exc:
            now = utc_now()
            first = first or now
            permanent = policy.is_permanent(exc)
            if permanent or current == last:
                raise GivenUp(exc, current, first, now, permanent) from exc
            pause = policy.pause(current)
            telemetry.count_delivery("retries", target, type(exc).__name__)
            where = "at the broker" if later is not None else "in process"
            LOG.warning("%s, attempt %d of %d: %s: %s; retrying in %.2f s (%s)",
                        what() if callable(what) else what, current, last,
                        type(exc).__name__, exc, pause, where,
                        extra=dict((log_extra() if callable(log_extra) else log_extra) or {}))
            if later is not None and await later(pause, current, first):
                raise RetryScheduled() from exc
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover - attempts >= 1
