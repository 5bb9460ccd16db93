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
task. The first step sends into the coroutine itself: when it returns (the usual case,
and the one each message pays for) the result is stored as ``Future.set_result`` stores
it; any other outcome (it suspended, raised, or cancelled its own task) is handed to the
Task's own step as if that step had just sent, so those keep asyncio's exact handling.
Where these private names are missing, tasks are started the usual way.
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
_futures: Any = asyncio.futures
_PyTask: Any = getattr(_tasks, "_PyTask", None)
_EMULATED = (not NATIVE and _PyTask is not None
             and all(hasattr(_PyTask, name) for name in (
                 "_Task__step", "_Future__schedule_callbacks", "_Future__log_traceback"))
             and all(hasattr(_tasks, name) for name in (
                 "_enter_task", "_leave_task", "_register_task", "_current_tasks"))
             and all(hasattr(_futures, name) for name in ("_PENDING", "_FINISHED")))


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
                _tasks._enter_task(loop, self)
                try:
                    sent = self._context.run(self._coro.send, None)
                except StopIteration as stop:
                    if not self._must_cancel:  # returned: what Future.set_result does
                        self._result = stop.value
                        self._state = _futures._FINISHED
                        if self._callbacks:  # added by the coroutine to its own task
                            self._Future__schedule_callbacks()
                        return
                    outcome = _Outcome(self, stop, None)
                except BaseException as exc:  # noqa: BLE001 - the Task's step sorts it out
                    outcome = _Outcome(self, exc, None)
                else:
                    outcome = _Outcome(self, None, sent)
                finally:
                    _tasks._leave_task(loop, self)
                outcome.hand_to_step()
            finally:
                if caller is not None:
                    _tasks._enter_task(loop, caller)
            if self._state == _futures._PENDING:
                _tasks._register_task(self)

        def __del__(self) -> None:
            # only a pending task or an exception nobody retrieved has anything to report
            # (Task.__del__ and Future.__del__ each check one, in two Python frames)
            if self._state == _futures._PENDING or self._Future__log_traceback:
                _PyTask.__del__(self)

    class _Outcome:
        """What the first send gave, replayed to ``Task.__step`` as its coroutine: the
        step then sends once more and gets it, raised or yielded, and handles it as it
        would have."""

        __slots__ = ("_task", "_coro", "_raised", "_yielded", "_must_cancel")

        def __init__(self, task: Any, raised: BaseException | None, yielded: Any) -> None:
            self._task = task
            self._coro = task._coro
            self._raised = raised
            self._yielded = yielded
            # a cancel() during the first send is for after it, where the step looks for
            # it: not before (the step would throw it into the coroutine that just ran)
            self._must_cancel = task._must_cancel
            task._must_cancel = False

        def hand_to_step(self) -> None:
            task = self._task
            task._coro = self
            try:
                task._context.run(task._Task__step)
            finally:
                task._coro = self._coro  # the real coroutine for every later step

        def send(self, _: None) -> Any:
            task, raised, yielded = self._task, self._raised, self._yielded
            task._coro = self._coro
            task._must_cancel = self._must_cancel or task._must_cancel
            # no reference cycle through this frame, which a raised exception's traceback keeps
            self._task = self._raised = self._yielded = task = None
            if raised is None:
                return yielded
            try:
                raise raised
            finally:
                raised = None
