"""A quorum queue counts the deliveries of one message (``x-delivery-count``): a policy
with ``at_broker=True`` reads it, so deliveries that never settled (a handler that ended
the process, a requeue) use up attempts, and one past them is dead-lettered with
relaybus's reason (``DeliveriesExceeded``) instead of running again or being dropped by
the queue's own ``x-delivery-limit``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from rabbit_support import Tap

import relaybus
from relaybus import DeliveryPolicy, NotificationResult, Target
from relaybus.testing.behaviour import Recorder


async def test_quorum_deliveries_past_the_attempts_dead_letter_without_running(
        make_bus: Callable[..., Awaitable[relaybus.Bus]], topic: str, tap: Tap) -> None:
    exchange = f"rbq_{uuid.uuid4().hex[:8]}"  # quorum queues want a durable exchange
    bus = await make_bus(rabbit_quorum_queue=True, control_exchange=exchange)
    dlq = f"{topic}_dlq"
    tap.forget_later(f"{topic}.info", f"{dlq}.error", f"{dlq}.info")
    runs: list[int] = []
    letters = Recorder()

    class Requeuing:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: dict[str, Any]) -> Any:
            runs.append(ctxt.get("relaybus_attempt", 1))
            if len(runs) == 1:  # a failure: the retry is a new copy saying attempt 2
                raise RuntimeError("first")
            return NotificationResult.REQUEUE  # as a crash would: the delivery never settles

    class Letters:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: dict[str, Any]) -> None:
            letters.add(relaybus.DeadLetterReason.from_context(ctxt))

        error = info

    policy = DeliveryPolicy(attempts=4, backoff=0.01, at_broker=True, dead_letter=dlq)
    async with bus.notification_listener([Target(topic=dlq)], [Letters()]), \
            bus.notification_listener([Target(topic=topic)], [Requeuing()], delivery=policy):
        await bus.notifier("p", topics=[topic]).info({}, "e", {"n": 1})
        (reason,) = await letters.wait_for(1)
    # attempt 1 failed; its copy ran as attempt 2, then twice more as the queue counted
    # unsettled deliveries (3, 4); the fifth delivery is past the attempts
    assert runs == [1, 2, 2, 2]
    assert (reason.error_type, reason.permanent, reason.attempts) == \
        ("DeliveriesExceeded", True, 4)
    assert tap.channel is not None
    await tap.channel.exchange_delete(exchange)
