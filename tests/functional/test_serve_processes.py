"""``relaybus serve --processes N`` and ``--reload``, as processes on the shared RabbitMQ
(each test its own topic): workers share the calls, SIGTERM drains them all, a dead
worker is started again, and a changed module is served at the next call."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from serve_support import WAIT, file_appears, serve, stopped_at_end, until, write_service

import relaybus
from relaybus import Target
from relaybus.testing.brokers import require_broker

pytestmark = pytest.mark.broker

RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"


class Lines:
    """A process's stderr lines, read on a thread; awaitable by content."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        assert process.stderr is not None
        self._thread = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def _wait(self, predicate: Callable[[list[str]], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.lines), timeout)

    async def count(self, prefix: str, n: int, timeout: float = WAIT) -> None:
        """Wait for ``n`` lines starting with ``prefix``."""
        def enough(lines: list[str]) -> bool:
            return sum(line.startswith(prefix) for line in lines) >= n
        assert await asyncio.to_thread(self._wait, enough, timeout), "".join(self.lines)

    async def saying(self, text: str, timeout: float = WAIT) -> None:
        """Wait for a line containing ``text``."""
        def said(lines: list[str]) -> bool:
            return any(text in line for line in lines)
        assert await asyncio.to_thread(self._wait, said, timeout), "".join(self.lines)


def same_second_edit(path: Path, old: str, new: str) -> None:
    before = path.stat().st_mtime_ns
    path.write_text(path.read_text().replace(old, new))
    os.utime(path, ns=(before + 1, before + 1))


@pytest.fixture
def topic() -> str:
    require_broker("RabbitMQ", "127.0.0.1", 5672)
    return f"procs_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def client(topic: str) -> AsyncIterator[relaybus.RPCClient]:
    async with await relaybus.connect(RABBIT) as bus:
        yield bus.rpc_client(Target(topic=topic), timeout=WAIT)


async def test_workers_share_calls_and_drain_on_sigterm(
        tmp_path: Path, topic: str, client: relaybus.RPCClient) -> None:
    process = serve(tmp_path, topic, write_service(tmp_path), "--processes", "2",
                    "--url", RABBIT, "--server", "s1", "--drain-timeout", "20")
    with stopped_at_end(process):
        lines = Lines(process)
        await lines.count("ready:", 2)
        seen: set[int] = set()
        for _ in range(40):  # the broker hands calls to its consumers in turn
            answer = await client.call({}, "whoami")
            assert answer["loop"] == "uvloop"  # installed (dev extra), RELAYBUS_LOOP unset
            seen.add(answer["pid"])
            if len(seen) == 2:
                break
        assert len(seen) == 2 and process.pid not in seen

        # a worker killed after it was ready is started again
        victim = seen.pop()
        os.kill(victim, signal.SIGKILL)
        await lines.count("ready:", 3)
        await lines.saying(f"(pid {victim}) exited on signal SIGKILL; starting it again")

        async def new_worker() -> bool:
            return (await client.call({}, "whoami"))["pid"] not in (victim, *seen)
        await until(new_worker, "the restarted worker to answer")

        # SIGTERM to the parent: a call in progress finishes, then everything exits 0
        marker = tmp_path / "held"
        held = asyncio.create_task(client.call({}, "hold", marker=str(marker)))
        holder = int(await file_appears(marker))
        process.send_signal(signal.SIGTERM)
        await lines.saying("letting 1 in progress finish")
        assert process.poll() is None
        (tmp_path / "held.go").touch()
        assert await held == "released"
        assert await asyncio.to_thread(process.wait, WAIT) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(holder, 0)


async def test_workers_run_on_the_loop_the_parent_was_given(
        tmp_path: Path, topic: str, client: relaybus.RPCClient) -> None:
    process = serve(tmp_path, topic, write_service(tmp_path), "--processes", "2",
                    "--url", RABBIT, "--server", "s1", env_extra={"RELAYBUS_LOOP": "asyncio"})
    with stopped_at_end(process):
        await Lines(process).count("ready:", 2)
        loops: dict[int, str] = {}
        for _ in range(40):  # the broker hands calls to its consumers in turn
            answer = await client.call({}, "whoami")
            loops[answer["pid"]] = answer["loop"]
            if len(loops) == 2:
                break
        assert loops and set(loops.values()) == {"asyncio"} and len(loops) == 2


async def test_reload_serves_the_changed_module_at_the_next_call(
        tmp_path: Path, topic: str, client: relaybus.RPCClient) -> None:
    reference = write_service(tmp_path)
    process = serve(tmp_path, topic, reference, "--reload", "--url", RABBIT, "--server", "s1")
    with stopped_at_end(process):
        lines = Lines(process)
        await lines.count("ready:", 1)
        assert (await client.call({}, "whoami"))["version"] == "v1"
        module = tmp_path / "held_service.py"

        async def serving(version: str) -> bool:
            try:
                answer = await client.prepare(timeout=2).call({}, "whoami")
            except (relaybus.MessagingTimeout, relaybus.MessageUndeliverable):
                return False  # between the old worker and the new one
            return bool(answer["version"] == version)

        # a broken edit: the worker cannot start; the parent waits for the next change
        await asyncio.to_thread(module.write_text, module.read_text().replace(
            'VERSION = "v1"', 'VERSION = "v2" +'))
        await lines.saying("before it was ready; waiting for a change")
        assert process.poll() is None
        await asyncio.to_thread(module.write_text, module.read_text().replace(
            'VERSION = "v2" +', 'VERSION = "v2"'))
        await until(lambda: serving("v2"), "the changed module to be served")
        # an edit of the same size within the same second (the v2 worker's .pyc records
        # the source's size and whole seconds, so it would still pass): not served stale
        await asyncio.to_thread(same_second_edit, module, 'VERSION = "v2"', 'VERSION = "v3"')
        await until(lambda: serving("v3"), "the same-size edit to be served")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, WAIT) == 0
