"""Tasks started eagerly: the first step runs at once, inside the call that starts it.

A server or listener runs each message's handler in a task of its own (bounded, drained
at stop, with its own ``current_task()``, context and cancellation). Created the usual
way, that task waits for the event loop's next turn before it runs at all, and a call
whose handler never suspends pays for that turn, the task's registration and its
scheduling on both sides. Python 3.12's eager tasks (``eager_start=True``) run the first
step at once instead and register the task only if it suspends; this module gives
Python 3.11 the same, so that a handler which completes without suspending (an in-process
``memory://`` call, most handlers on a NATS server) costs no loop turn.

What the handler sees is a task's, as it would be in the loop: during the eager step
``asyncio.current_task()`` is the new task (the caller's task is set aside and restored
after), the step runs in the task's own copy of the caller's context, and a task that
suspends is registered (``asyncio.all_tasks()``) and continues on the loop like any
other; ``cancel()``, ``asyncio.timeout()`` and ``TaskGroup`` inside it work on it.

On Python 3.11 the eager task is the standard library's pure-Python ``Task``
(``asyncio.tasks._PyTask``, the same class ``asyncio`` falls back to without its C
accelerator), set up without scheduling its first step; a task that suspends then steps
in Python, so a handler that awaits often pays a little more per await than in the C
task. Where these private names are missing, tasks are started the usual way.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: the standard library starts tasks eagerly itself (Python 3.12 and later)
NATIVE = sys.version_info >= (3, 12)

_tasks: Any = asyncio.tasks
_PyTask: Any = getattr(_tasks, "_PyTask", None)
_EMULATED = (not NATIVE and _PyTask is not None and hasattr(_PyTask, "_Task__step")
             and all(hasattr(_tasks, name) for name in (
                 "_enter_task", "_leave_task", "_register_task", "_current_tasks")))


def start(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Future[T]:
    """Run ``coro``'s first step now, as a task named ``name``; the task is returned
    (done already if the coroutine did not suspend).

    Call from a coroutine or callback running on the event loop. An exception the
    coroutine raises is the task's, as with ``create_task`` (``KeyboardInterrupt`` and
    ``SystemExit`` propagate from here).
    """
    loop = asyncio.get_running_loop()
    if NATIVE:
        task: asyncio.Future[T] = asyncio.Task(  # type: ignore[call-arg]
            coro, loop=loop, name=name, eager_start=True)
        return task
    if not _EMULATED:  # pragma: no cover - only if a 3.11 build lacks the private names
        return loop.create_task(coro, name=name)
    eager = _EagerTask(coro, loop, name, contextvars.copy_context())
    eager.first_step()
    return eager


if _EMULATED:
    class _EagerTask(_PyTask):  # type: ignore[misc]
        """A pure-Python task whose first step is run by :meth:`first_step`, not by the
        loop; registered with asyncio only if it suspends."""

        def __init__(self, coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop,
                     name: str, context: contextvars.Context) -> None:
            # _PyTask.__init__ without its call_soon and registration (the Future's and
            # the Task's class attributes give the remaining fields their initial values)
            self._loop = loop
            self._callbacks: list[Any] = []
            self._name = name
            self._num_cancels_requested = 0
            self._must_cancel = False
            self._fut_waiter = None
            self._coro = coro
            self._context = context

        def first_step(self) -> None:
            loop = self._loop
            caller = _tasks._current_tasks.get(loop)  # current_task(loop), without its frame
            if caller is not None:  # the step enters this task: set the caller's aside
                _tasks._leave_task(loop, caller)
            try:
                self._context.run(self._Task__step)
            finally:
                if caller is not None:
                    _tasks._enter_task(loop, caller)
            if not self.done():
                _tasks._register_task(self)
