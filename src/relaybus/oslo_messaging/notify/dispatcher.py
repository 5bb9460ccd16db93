"""``NotificationResult``: what a listener endpoint returns."""

from __future__ import annotations

from relaybus import NotificationResult

PRIORITIES = ["audit", "debug", "info", "warn", "error", "critical", "sample"]

__all__ = ["PRIORITIES", "NotificationResult"]
