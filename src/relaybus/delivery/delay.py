"""Delayed delivery: the checks every transport shares (the moving is the driver's)."""

from __future__ import annotations

from relaybus import telemetry
from relaybus.errors import TransportError
from relaybus.transport.base import Driver


def check_delay(delay: float | None) -> float | None:
    """``delay`` as seconds (None or 0: no delay); ValueError when it is not a delay."""
    if delay is None:
        return None
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0 \
            or delay != delay:  # NaN
        raise ValueError(f"delay must be a number of seconds >= 0, got {delay!r}")
    return float(delay) or None


def check_transport_can_delay(driver: Driver, delay: float) -> None:
    """Raise when ``driver`` cannot hold a message for ``delay`` seconds.

    Raises:
        TransportError: the transport cannot delay messages.
        ValueError: the delay is over the transport's longest.
    """
    if driver.max_delay <= 0:
        raise TransportError(f"the {driver.url.scheme} transport cannot delay messages")
    if delay > driver.max_delay:
        raise ValueError(f"delay {delay:g} s is over the {driver.url.scheme} transport's "
                         f"longest, {driver.max_delay:g} s")


def bucket_label(delay: float) -> str:
    """A coarse delay label for metrics (``<1s``, ``<1m``, ``<1h``, ``>=1h``)."""
    for limit, label in ((1, "<1s"), (60, "<1m"), (3600, "<1h")):
        if delay < limit:
            return label
    return ">=1h"


def count_delayed(topic: str, delay: float) -> None:
    """Count a message sent with a delay."""
    telemetry.count_delivery("delayed", topic, bucket_label(delay))
