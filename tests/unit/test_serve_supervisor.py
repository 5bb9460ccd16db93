"""``serve --processes`` / ``--reload``: what the parent refuses before starting workers,
and which files ``--reload`` watches."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from relaybus.cli.supervisor import Supervisor, _Watch, source_files

ROOT = Path(__file__).resolve().parents[2]


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    return subprocess.run([sys.executable, "-m", "relaybus", "serve",
                           "examples.compute.service:compute", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=env)


@pytest.mark.parametrize(("args", "text"), [
    (["--processes", "2", "--url", "memory://"], "needs a broker the processes share"),
    (["--processes", "2", "--url", "nats://127.0.0.1:1", "--health-port", "8080"],
     "--health-port serves one process"),
    (["--processes", "2", "--url", "nats://127.0.0.1:1", "--metrics-port", "9100"],
     "--metrics-port serves one process"),
])
def test_refused_before_any_worker_starts(args: list[str], text: str) -> None:
    result = _serve(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and text in result.stderr


def test_a_worker_that_cannot_start_stops_the_parent_with_its_code() -> None:
    result = _serve("--processes", "2", "--url", "nats://127.0.0.1:1")
    assert result.returncode == 5, result.stderr
    assert "before it was ready; stopping" in result.stderr


def test_reload_watches_the_package_or_the_modules_beside(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    for name in ("pkg/__init__.py", "pkg/sub/api.py", "alone.py", "other.py", "notes.txt"):
        (tmp_path / name).write_text("")
    assert source_files(str(package / "sub" / "api.py"), [str(package)]) == \
        [package / "__init__.py", package / "sub" / "api.py"]
    assert source_files(str(tmp_path / "alone.py"), []) == \
        [tmp_path / "alone.py", tmp_path / "other.py"]
    watch = _Watch(str(tmp_path / "alone.py"), [])
    assert watch.changed() == []
    (tmp_path / "new.py").write_text("")
    os.utime(tmp_path / "other.py", ns=(1, 1))
    assert watch.changed() == [tmp_path / "new.py", tmp_path / "other.py"]
    assert watch.changed() == []


WORKER = """
import signal, sys
from pathlib import Path
sys.stderr.write("x" * (2 << 20) + "\\n")
sys.stderr.write("ready: fake\\n")
sys.stderr.flush()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
Path(sys.argv[1]).write_text("up")
signal.pause()
"""


async def test_an_overlong_worker_line_is_dropped_not_fatal(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    up = tmp_path / "up"
    supervisor = Supervisor([sys.executable, "-c", WORKER, str(up)], dict(os.environ), 1)
    running = asyncio.create_task(supervisor.run())
    async with asyncio.timeout(30):
        while not up.exists():  # noqa: ASYNC110 - the worker process says so in a file
            await asyncio.sleep(0.02)
    os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's handler, on this loop
    assert await asyncio.wait_for(running, 30) == 0
    err = capfd.readouterr().err
    assert "output line over 1 MiB was dropped" in err and "ready: fake" in err
