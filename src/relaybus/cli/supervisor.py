"""``relaybus serve --processes N`` and ``--reload``: a parent that runs ``serve`` workers.

The parent connects to nothing. It starts each worker as ``python -m relaybus serve`` with
the settings it resolved (passed in the environment, so no password shows in ``ps``), and
forwards each worker's stderr line by line.

- **SIGTERM or SIGINT** is passed to every worker; each drains (no new requests, those in
  progress finish, up to ``drain_timeout``) and the parent exits once all have: 0 when
  every worker exited 0, else the first other exit code. A second signal kills them.
- **A worker that fails to start** (it exits before saying ``ready:``: the broker is
  unreachable, the login refused) stops the others, and the parent exits with its code,
  as a single ``serve`` would. With ``--reload``, it waits for the next change instead.
- **A worker that dies after it was ready** (a crash, the OOM killer) is reported with its
  exit code and started again, after a pause that doubles (0.5 s up to 30 s) while
  restarted workers keep dying within a minute.
- **--reload** polls the modification times of the service's source files (its package,
  or the ``.py`` files beside a top-level module) twice a second; on a change every worker
  is stopped (drained) and started again, so the next call runs the new code.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

LOG = logging.getLogger("relaybus.serve")

READY_PREFIX = "ready:"
POLL_INTERVAL = 0.5
LINE_LIMIT = 1 << 20
FIRST_PAUSE, MAX_PAUSE, STABLE_AFTER = 0.5, 30.0, 60.0


def source_files(module_file: str | None, package_dirs: Sequence[str]) -> list[Path]:
    """The files ``--reload`` watches: every ``.py`` under the service's top-level package,
    or beside its top-level module."""
    if package_dirs:
        return sorted(p for d in package_dirs for p in Path(d).rglob("*.py"))
    if module_file:
        return sorted(Path(module_file).parent.glob("*.py"))
    return []


class _Watch:
    """Polls the modification times of a set of files (found again on each poll, so a new
    file counts as a change)."""

    def __init__(self, module_file: str | None, package_dirs: Sequence[str]) -> None:
        self._module_file = module_file
        self._package_dirs = list(package_dirs)
        self._seen = self._snapshot()

    def _snapshot(self) -> dict[Path, int]:
        found = {}
        for path in source_files(self._module_file, self._package_dirs):
            try:
                found[path] = path.stat().st_mtime_ns
            except OSError:  # removed between listing and stat
                continue
        return found

    def changed(self) -> list[Path]:
        """The files changed, added or removed since the last call. A changed file's
        cached bytecode is removed: its .pyc records the source's size and whole seconds,
        so a same-size edit within a second would otherwise load the old code."""
        now = self._snapshot()
        diff = [p for p in now.keys() | self._seen.keys() if now.get(p) != self._seen.get(p)]
        self._seen = now
        for path in diff:
            with contextlib.suppress(OSError, ValueError):
                Path(importlib.util.cache_from_source(str(path))).unlink(missing_ok=True)
        return sorted(diff)


class Supervisor:
    """Runs ``count`` copies of ``command`` until stopped; see the module docstring.

    Args:
        command: the worker's command line.
        env: the worker's environment.
        count: how many workers.
        watch: ``(module file, package directories)`` to reload on change, or None.
    """

    def __init__(self, command: Sequence[str], env: Mapping[str, str], count: int,
                 watch: tuple[str | None, Sequence[str]] | None = None) -> None:
        self._command = list(command)
        self._env = dict(env)
        self._count = count
        self._watch = _Watch(*watch) if watch is not None else None
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._stop = asyncio.Event()
        self._generation = 0
        self._changed = asyncio.Condition()
        self._failure: int | None = None
        self._exit_codes: dict[int, int] = {}

    async def run(self) -> int:
        """Run the workers until SIGTERM/SIGINT or a failed start; the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        LOG.warning("starting %d worker process(es)%s", self._count,
                    " (reloading on change)" if self._watch else "")
        async with asyncio.TaskGroup() as tasks:
            for index in range(1, self._count + 1):
                tasks.create_task(self._keep(index), name=f"relaybus.serve.worker[{index}]")
            watcher = tasks.create_task(self._poll(), name="relaybus.serve.reload") \
                if self._watch is not None else None
            await self._stop.wait()
            if watcher is not None:
                watcher.cancel()
            self._signal_all(signal.SIGTERM)
            async with self._changed:
                self._changed.notify_all()  # workers waiting for a change or a pause
        if self._failure is not None:
            return self._failure
        bad = [c for _, c in sorted(self._exit_codes.items()) if c not in (0, -signal.SIGTERM)]
        return bad[0] if bad else 0

    def _on_signal(self) -> None:
        if self._stop.is_set():  # a second signal: do not wait for the drain
            LOG.warning("killing the worker(s)")
            self._signal_all(signal.SIGKILL)
        self._stop.set()

    def _signal_all(self, sig: int) -> None:
        for process in list(self._processes.values()):
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(sig)

    async def _keep(self, index: int) -> None:
        pause = FIRST_PAUSE
        while not self._stop.is_set():
            generation = self._generation
            started = asyncio.get_running_loop().time()
            process = await asyncio.create_subprocess_exec(
                *self._command, env=self._env, stdin=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, limit=LINE_LIMIT)
            self._processes[index] = process
            ready = await self._forward(process)
            code = await process.wait()
            self._exit_codes[index] = code
            if self._stop.is_set():
                return
            if generation != self._generation:
                continue  # reloaded: start the new code at once
            if not ready:
                if self._watch is None:
                    LOG.error("worker %d (pid %d) exited %s before it was ready; stopping",
                              index, process.pid, _describe(code))
                    self._failure = code if code > 0 else 1
                    self._stop.set()
                    return
                LOG.error("worker %d (pid %d) exited %s before it was ready; waiting for a "
                          "change to start it again", index, process.pid, _describe(code))
                await self._wait_for_change(generation)
                continue
            lived = asyncio.get_running_loop().time() - started
            pause = FIRST_PAUSE if lived > STABLE_AFTER else min(pause * 2, MAX_PAUSE)
            LOG.error("worker %d (pid %d) exited %s; starting it again in %.1f s", index,
                      process.pid, _describe(code), pause)
            await self._pause(pause)

    async def _forward(self, process: asyncio.subprocess.Process) -> bool:
        """Copy the worker's stderr to ours until it closes; whether it said ``ready:``."""
        assert process.stderr is not None
        ready = False
        while True:
            try:
                line = await process.stderr.readline()
            except ValueError:  # asyncio dropped a line longer than LINE_LIMIT
                line = b"relaybus serve: a worker's output line over 1 MiB was dropped\n"
            if not line:
                break
            text = line.decode(errors="replace")
            ready = ready or text.startswith(READY_PREFIX)
            sys.stderr.write(text)
            sys.stderr.flush()
        return ready

    async def _wait_for_change(self, generation: int) -> None:
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._generation != generation or self._stop.is_set())

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    async def _poll(self) -> None:
        assert self._watch is not None
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            changed = await asyncio.to_thread(self._watch.changed)
            if not changed:
                continue
            LOG.warning("%s changed; restarting the worker(s)",
                        ", ".join(_short(p) for p in changed[:3])
                        + (f" and {len(changed) - 3} more" if len(changed) > 3 else ""))
            async with self._changed:
                self._generation += 1
                self._changed.notify_all()
            self._signal_all(signal.SIGTERM)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"on signal {signal.Signals(-code).name}"
        except ValueError:
            return f"on signal {-code}"
    return f"with code {code}"


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(os.getcwd()))
    except ValueError:
        return str(path)
