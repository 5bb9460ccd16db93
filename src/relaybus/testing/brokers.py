"""Reaching the real brokers tests need, or saying clearly why not.

On a user's machine a test whose broker is down skips with a one-line reason; with
``RELAYBUS_REQUIRE_BROKERS=1`` (set by CI) it fails instead, so a missing broker can
never hide as a skip.
"""

from __future__ import annotations

import os
import shutil
import socket

REQUIRE_ENV = "RELAYBUS_REQUIRE_BROKERS"


def brokers_required() -> bool:
    """Whether a missing broker must fail the test run."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_broker(name: str, host: str, port: int) -> None:
    """Skip (or fail, when brokers are required) unless the broker answers at host:port."""
    import pytest

    if reachable(host, port):
        return
    reason = f"{name} is not reachable at {host}:{port}"
    if brokers_required():
        pytest.fail(f"{reason} and {REQUIRE_ENV}=1 is set", pytrace=False)
    pytest.skip(reason)


def require_program(program: str, purpose: str = "") -> None:
    """Skip (or fail, when brokers are required) unless ``program`` is on the PATH: a broker's
    own tool (``rabbitmqctl``) or server (``rabbitmq-server`` for a node of a test's own)."""
    import pytest

    if shutil.which(program) is not None:
        return
    reason = f"{program} is not installed" + (f" (needed {purpose})" if purpose else "")
    if brokers_required():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
