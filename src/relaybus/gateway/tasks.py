"""A small task helper the connection handlers share."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


async def first_completed(**coroutines: Coroutine[Any, Any, Any]) -> str:
    """Run each coroutine as a task named after its keyword until the first one ends.

    The others are then cancelled and awaited, so no task outlives the call; an exception
    of the first one to end is raised.

    Returns:
        The name of the coroutine that ended first.
    """
    tasks = {asyncio.ensure_future(coro): name for name, coro in coroutines.items()}
    for task, name in tasks.items():
        task.set_name(name)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    first = next(iter(done))
    if not first.cancelled() and first.exception() is not None:
        raise first.exception()  # type: ignore[misc]
    return tasks[first]
