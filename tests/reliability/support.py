"""Processes and event collection shared by the scenarios."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import relaybus
from relaybus import Target

HERE = Path(__file__).resolve().parent
WAIT = 20.0


def environment(url: str, topic: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    env.update({"RELAYBUS_URL": url, "RELIABILITY_TOPIC": topic})
    return env


class ServerProcess:
    """``relaybus serve endpoints:reliable`` in a process of its own."""

    def __init__(self, url: str, topic: str, server: str, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relaybus", "serve", "endpoints:reliable", "--topic", topic,
             "--server", server, *extra], cwd=HERE, env=environment(url, topic),
            stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        if not line.startswith("ready:"):
            self.kill()
            raise RuntimeError(f"server {server} did not start: {line}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        if self.process.stderr is not None:
            self.process.stderr.close()


class Events:
    """Collects the endpoints' announcements (``<topic>_events``) in the test process."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.items.append((event_type, payload))
        self._changed.set()

    def count(self, event_type: str, token: str | None = None) -> int:
        return sum(1 for kind, p in self.items
                   if kind == event_type and (token is None or p.get("token") == token))

    async def wait_for(self, event_type: str, token: str | None = None, n: int = 1,
                       timeout: float = WAIT) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while self.count(event_type, token) < n:
                self._changed.clear()
                await self._changed.wait()
        return [p for kind, p in self.items
                if kind == event_type and (token is None or p.get("token") == token)]


def events_listener(bus: relaybus.Bus, topic: str, events: Events) -> relaybus.NotificationListener:
    return bus.notification_listener([Target(topic=f"{topic}_events")], [events],
                                     pool=f"{topic}-observer")
