"""A per-endpoint rate limit: a token bucket for each ``topic.method`` a server serves.

A request over the limit is not run; its caller gets :class:`RateLimited`, which says
how long to wait (``retry_after``, seconds) and arrives as itself when
``examples.middleware.ratelimit`` is in the client's ``allowed_remote_exmods``::

    bus = await relaybus.connect(url, middleware=[RateLimit(rate=100, burst=20)])

Only methods the server really serves get a bucket (``request.resolved``): a junk method
name a hostile peer makes up is answered with NoSuchMethod and costs no memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import relaybus
from relaybus.middleware import Next


class RateLimited(relaybus.Rejected):
    """The endpoint is over its rate; try again in ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.kwargs = {"retry_after": retry_after}  # travels, so the caller gets it too


class TokenBucket:
    """``rate`` tokens a second, up to ``burst`` saved; each request takes one."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._clock = clock
        self._updated = clock()

    def take(self) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there is."""
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimit(relaybus.Middleware):
    """Limits each endpoint method a server handles to ``rate`` requests a second.

    Args:
        rate: requests a second each endpoint method may take, on average.
        burst: how many may come at once after a quiet spell.
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, rate: float, burst: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    async def handle_request(self, request: relaybus.RequestInfo,
                             call_next: Next[relaybus.RequestInfo]) -> Any:
        if not request.resolved:  # no such method: the server says so, no bucket needed
            return await call_next(request)
        name = f"{request.topic}.{request.method}"
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(self.rate, self.burst, self._clock)
        wait = bucket.take()
        if wait:
            raise RateLimited(f"{name} is over its limit of {self.rate:g}/s; "
                              f"retry in {wait:.3f} s", retry_after=wait)
        return await call_next(request)
