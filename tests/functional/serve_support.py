"""Helpers for the tests that run ``relaybus serve`` as a process (no tests here).

A service module written into the test's own directory (so a test may edit it, and a
call may hold until the test lets it go), probes read over HTTP, and a poll for states
that only another process can show.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0

SERVICE = '''
"""A service for the serve tests: who answers, and a call the test holds open."""

import asyncio
import os
from pathlib import Path

from relaybus import Service, Target

VERSION = "v1"


class Held:
    async def whoami(self, ctxt):
        return {"pid": os.getpid(), "version": VERSION,
                "loop": type(asyncio.get_running_loop()).__module__.split(".")[0]}

    async def hold(self, ctxt, marker: str):
        """Say it started (a file), then wait until the test creates ``marker + '.go'``."""
        Path(marker).write_text(str(os.getpid()))
        while not Path(marker + ".go").exists():  # noqa: ASYNC110 - another process decides
            await asyncio.sleep(0.02)
        return "released"


service = Service(name="held", target=Target(topic=os.environ["HELD_TOPIC"]),
                  endpoints=[Held()])
'''


def write_service(directory: Path, name: str = "held_service") -> str:
    """Write the service module into ``directory``; returns its ``MODULE:OBJECT``."""
    (directory / f"{name}.py").write_text(SERVICE)
    return f"{name}:service"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(directory: Path, topic: str, *args: str,
          env_extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``relaybus serve`` with ``directory`` on its path, its stderr piped."""
    # bytecode written as on a user's machine (--reload must not serve a stale .pyc)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAYBUS_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=os.pathsep.join([str(directory), str(ROOT / "src")]),
               HELD_TOPIC=topic, XDG_STATE_HOME=str(directory / "state"))
    env.update(env_extra or {})
    return subprocess.Popen([sys.executable, "-m", "relaybus", "serve", *args],
                            cwd=directory, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait_ready_line(process: subprocess.Popen[str]) -> str:
    """The first ``ready:`` line on stderr (the lines before it are returned too)."""
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("ready:"):
            return "".join(seen)
    raise AssertionError(f"serve exited {process.wait()} before it was ready: {''.join(seen)}")


@contextlib.contextmanager
def stopped_at_end(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


def probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """GET a probe; (status, JSON body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def aprobe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    return await asyncio.to_thread(probe, port, path)


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = WAIT) -> Any:
    """Poll ``check()`` until it returns something true; its last value otherwise fails."""
    last: Any = None
    try:
        async with asyncio.timeout(timeout):
            while not (last := await check()):  # noqa: ASYNC110 - another process's state
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what}: still {last!r} after {timeout} s") from None
    return last


def _read_if_written(path: Path) -> str | None:
    return path.read_text() if path.exists() and path.stat().st_size else None


async def file_appears(path: Path, timeout: float = WAIT) -> str:
    """The text of ``path`` once another process wrote it."""
    async def read() -> str | None:
        return await asyncio.to_thread(_read_if_written, path)
    result: str = await until(read, f"{path.name} to appear", timeout)
    return result
