"""Endpoints the scenarios serve in separate processes (``relaybus serve endpoints:...``).

Run from this directory; each reports what it does as notifications on ``<topic>_events``,
so a scenario can await events instead of sleeping.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import relaybus

TOPIC_ENV = "RELIABILITY_TOPIC"


class Reliable:
    """Slow, blocking and echo methods that announce themselves."""

    def __init__(self) -> None:
        self._bus: relaybus.Bus | None = None
        self._notifier: relaybus.Notifier | None = None

    async def _announce(self, event_type: str, payload: dict[str, Any]) -> None:
        if self._notifier is None:
            self._bus = await relaybus.connect(os.environ["RELAYBUS_URL"])
            topic = os.environ[TOPIC_ENV]
            self._notifier = self._bus.notifier(f"reliability.{os.getpid()}",
                                                topics=[f"{topic}_events"])
        await self._notifier.info({}, event_type, payload)

    async def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    async def slow(self, ctxt: Any, seconds: float, token: str) -> int:
        """Announce the start, sleep, announce the end; returns this process's id."""
        await self._announce("reliability.started", {"token": token, "pid": os.getpid()})
        await asyncio.sleep(seconds)
        await self._announce("reliability.finished", {"token": token, "pid": os.getpid()})
        return os.getpid()

    def blocking(self, ctxt: Any, seconds: float) -> str:
        """Block a worker thread (never the event loop) for a while."""
        time.sleep(seconds)
        return "unblocked"


reliable = Reliable()
