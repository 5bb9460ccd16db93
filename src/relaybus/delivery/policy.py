"""DeliveryPolicy: bounded attempts, capped exponential backoff with jitter, dead letters."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from relaybus.target import Target

DEFAULT_MAX_BACKOFF = 30.0


@dataclasses.dataclass(frozen=True)
class DeliveryPolicy:
    """What a listener or server does when a handler raises.

    A handler that raises is run again after a pause, up to ``attempts`` runs in all; the
    pause before run ``n + 1`` is ``min(max_backoff, backoff * factor ** (n - 1))``
    seconds, shortened by up to ``jitter`` of itself at random (``jitter=0.2``: 80-100 %
    of the pause), so that many consumers failing together do not retry together. An
    exception that is an instance of one of ``permanent`` is not retried. A message given
    up on goes to ``dead_letter`` (a notification topic) with the reason attached (see
    :class:`~relaybus.delivery.DeadLetterReason`), or is logged and dropped when None.

    The message stays unacknowledged with its broker while it waits for its next run, so
    a consumer that dies meanwhile leaves it to be delivered again (from its first
    attempt), never lost.

    Args:
        attempts: runs in all, at least 1 (1: no retry).
        backoff: the first pause, in seconds.
        factor: each pause is this many times the previous one (>= 1).
        max_backoff: no pause is longer than this, in seconds.
        jitter: the share (0 to 1) of a pause taken off at random.
        dead_letter: the topic given-up messages go to; None drops them (logged).
        permanent: exception classes that dead-letter at once, without another run.
        at_broker: hand each retry to the broker instead of waiting in process, so a
            retry in progress survives this consumer's restart. Listeners: RabbitMQ holds
            it in a delay queue that dead-letters into the pool's queue, JetStream
            redelivers it with NakWithDelay, memory:// keeps it on a timer of its broker;
            the whole notification comes again, so handlers of it that succeeded run
            again. Servers: a failed cast is cast again with a delay, to any server of
            its topic. Batch listeners retry in process.
    """

    attempts: int = 1
    backoff: float = 0.5
    factor: float = 2.0
    max_backoff: float = DEFAULT_MAX_BACKOFF
    jitter: float = 0.0
    dead_letter: str | None = None
    permanent: tuple[type[BaseException], ...] = ()
    at_broker: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) \
                or self.attempts < 1:
            raise ValueError(f"attempts must be a whole number >= 1, got {self.attempts!r}")
        for name, low in (("backoff", 0.0), ("factor", 1.0), ("max_backoff", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
                raise ValueError(f"{name} must be a number >= {low:g}, got {value!r}")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, float)) \
                or not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be a number from 0 to 1, got {self.jitter!r}")
        if self.dead_letter is not None:
            Target(topic=self.dead_letter)  # a name a topic can have, or InvalidTarget
        permanent = self.permanent
        if isinstance(permanent, type):
            permanent = (permanent,)
        permanent = tuple(permanent)
        for cls in permanent:
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise ValueError(f"permanent must name exception classes, got {cls!r}")
        object.__setattr__(self, "permanent", permanent)

    @classmethod
    def from_shorthands(cls, retries: int = 0, retry_backoff: float = 0.5,
                        dead_letter_topic: str | None = None) -> DeliveryPolicy:
        """The policy the listener arguments ``retries``, ``retry_backoff`` and
        ``dead_letter_topic`` stand for: ``retries + 1`` attempts, doubling pauses."""
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a whole number >= 0, got {retries!r}")
        if isinstance(retry_backoff, bool) or not isinstance(retry_backoff, (int, float)) \
                or retry_backoff < 0:
            raise ValueError(f"retry_backoff must be >= 0 seconds, got {retry_backoff!r}")
        return cls(attempts=retries + 1, backoff=retry_backoff, dead_letter=dead_letter_topic)

    def pause(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the ``failures``-th failed run before the next one."""
        if failures < 1:
            raise ValueError("pause() is asked after at least one failure")
        # factor ** n overflows long before the cap matters: stop growing at the cap
        grown = self.backoff
        for _ in range(failures - 1):
            if grown >= self.max_backoff:
                break
            grown *= self.factor
        capped = min(self.max_backoff, grown)
        return capped * (1.0 - self.jitter * rand())

    def is_permanent(self, exc: BaseException) -> bool:
        """Whether ``exc`` is one of the errors that dead-letter at once."""
        return isinstance(exc, self.permanent)

    def retries(self) -> int:
        """How many runs may follow the first (``attempts - 1``)."""
        return self.attempts - 1
