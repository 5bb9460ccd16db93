"""Which event loop relaybus runs where it owns one: uvloop where installed, else asyncio.

relaybus owns an event loop in two places only: the ``relaybus`` commands (each runs its
coroutine with :func:`run`) and :mod:`relaybus.sync`'s background thread (made with
:func:`new_event_loop`), which the oslo.messaging drop-in runs on. Code that runs inside the
caller's own loop (``await relaybus.connect(...)``) never changes loops: the application
chose it.

The choice is ``$RELAYBUS_LOOP``:

- ``auto`` (the default): uvloop when it can be imported (``pip install 'relaybus[uvloop]'``),
  asyncio's own loop otherwise;
- ``asyncio``: asyncio's own loop, even where uvloop is installed;
- ``uvloop``: uvloop, and a one-line :class:`LoopUnavailable` where it is not installed.

uvloop is optional and never required: every relaybus feature runs on either loop.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

ENV = "RELAYBUS_LOOP"
CHOICES = ("auto", "asyncio", "uvloop")

T = TypeVar("T")


class LoopUnavailable(ValueError):
    """``$RELAYBUS_LOOP`` names a loop that cannot run here (unknown, or not installed)."""


@dataclass(frozen=True)
class Loop:
    """The event loop chosen, how it was asked for, and how to make one.

    Attributes:
        name: ``"uvloop"`` or ``"asyncio"``.
        version: uvloop's version, or None for asyncio's own loop.
        setting: the ``$RELAYBUS_LOOP`` value the choice was made from (``auto`` if unset).
        factory: makes a new, not yet running, loop of this kind.
    """

    name: str
    version: str | None
    setting: str
    factory: Callable[[], asyncio.AbstractEventLoop]

    def describe(self) -> str:
        """One line for humans, such as ``uvloop 0.23.0 (RELAYBUS_LOOP=auto)``."""
        named = f"{self.name} {self.version}" if self.version else self.name
        return f"{named} ({ENV}={self.setting})"


def _uvloop() -> Loop | None:
    try:
        import uvloop
    except ImportError:
        return None
    version = importlib.metadata.version("uvloop")
    return Loop("uvloop", version, "", uvloop.new_event_loop)


def choose(setting: str | None = None) -> Loop:
    """The loop relaybus runs for ``setting`` (default: ``$RELAYBUS_LOOP``, else ``auto``).

    Raises:
        LoopUnavailable: the setting is not one of auto, asyncio, uvloop; or it is uvloop
            and uvloop is not installed.
    """
    if setting is None:
        setting = os.environ.get(ENV, "")
    wanted = setting.strip().lower() or "auto"
    if wanted not in CHOICES:
        raise LoopUnavailable(f"{ENV}={setting!r}: must be one of {', '.join(CHOICES)}")
    found = None if wanted == "asyncio" else _uvloop()
    if found is not None:
        return Loop(found.name, found.version, wanted, found.factory)
    if wanted == "uvloop":
        raise LoopUnavailable(f"{ENV}=uvloop, but uvloop is not installed: "
                              "pip install 'relaybus[uvloop]', or unset it")
    return Loop("asyncio", None, wanted, asyncio.new_event_loop)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the chosen kind (see :func:`choose`), not set as current."""
    return choose().factory()


def run(coro: Coroutine[Any, Any, T], *, loop: Loop | None = None) -> T:
    """Run ``coro`` to completion on a new loop of the chosen kind, as ``asyncio.run`` does.

    Args:
        coro: the coroutine to run.
        loop: the choice to use; by default :func:`choose`'s.

    Raises:
        LoopUnavailable: as :func:`choose` (``coro`` is closed, never left unawaited).
    """
    try:
        chosen = loop if loop is not None else choose()
    except BaseException:
        coro.close()
        raise
    with asyncio.Runner(loop_factory=chosen.factory) as runner:
        return runner.run(coro)
