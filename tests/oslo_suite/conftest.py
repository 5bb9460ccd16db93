"""Harness running oslo.messaging's own functional tests against relaybus's drop-in.

The test modules here import oslo's test classes from the installed wheel, unchanged,
inside :func:`oslo_world.drop_in_world` (so ``oslo_messaging`` in them is
``relaybus.oslo_messaging``), and bind each class to a transport: ``rabbit`` (a virtual
host of its own, created here and deleted at the end) or ``fake`` (the embedded
memory transport). oslo's tests read the URL from ``RPC_TRANSPORT_URL`` /
``NOTIFY_TRANSPORT_URL``, set here for each test.

``RELAYBUS_OSLO_SUITE_BASELINE=1 pytest tests/oslo_suite`` runs the same tests against the
real oslo.messaging (the baseline). :data:`DESELECTED` lists, with the reason, every
test that fails or skips on the real oslo.messaging on this machine too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from oslo_world import BASELINE, drop_in_world

from relaybus.testing.brokers import require_broker, require_program

HERE = Path(__file__).parent
RABBIT = ("RabbitMQ", "127.0.0.1", 5672)

_METRICS = ("needs an oslo.metrics collector (python3 -m oslo_metrics, socket "
            "/var/tmp/metrics_collector.sock, port 3000); fails on oslo.messaging here")
_CALL_MONITORING_SKIP = "oslo's test skips itself on fake:// (no call monitoring / mandatory)"
DESELECTED: dict[str, str] = {
    "test_functional_rabbit.py::MetricsTestCase::test_functional": _METRICS,
    "test_functional_fake.py::MetricsTestCase::test_functional": _METRICS,
    "test_functional_fake.py::CallTestCase::test_mandatory_call": _CALL_MONITORING_SKIP,
    "test_functional_fake.py::CallTestCase::test_monitor_long_call": _CALL_MONITORING_SKIP,
}
# Not imported at all: oslo_messaging/tests/functional/test_rabbitmq.py (failover) needs
# pifpaf to start a three-node RabbitMQ cluster on port 5692 and stop nodes under it.

_OSLO_WARNINGS = r"ignore::DeprecationWarning"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        path = str(item.path).replace(os.sep, "/")
        if "tests/oslo_suite/" not in path:
            kept.append(item)
            continue
        item.add_marker(pytest.mark.filterwarnings(_OSLO_WARNINGS))
        key = f"{item.path.name}::{item.nodeid.split('::', 1)[1]}"
        if key in DESELECTED:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _rabbitmqctl(*args: str) -> None:
    require_program("rabbitmqctl", "for the oslo suite's vhost")
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def oslo_suite_vhost() -> Iterator[str]:
    require_broker(*RABBIT)
    given = os.environ.get("RELAYBUS_OSLO_SUITE_VHOST")
    if given:  # a child process of test_logging_scenarios.py: its parent owns the vhost
        yield given
        return
    name = f"relaybus-oslo-suite-{os.getpid()}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        _rabbitmqctl("delete_vhost", name)


@pytest.fixture(autouse=True)
def _oslo_suite_transport(request: pytest.FixtureRequest,
                          monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    kind = getattr(request.cls, "oslo_suite_transport", None)
    if kind is None:
        yield
        return
    if kind == "rabbit":
        vhost = request.getfixturevalue("oslo_suite_vhost")
        url = f"rabbit://guest:guest@127.0.0.1:5672/{vhost}"
        monkeypatch.setenv("TRANSPORT_DRIVER", "rabbit")
    else:
        url = "fake://"
    monkeypatch.setenv("RPC_TRANSPORT_URL", url)
    monkeypatch.setenv("NOTIFY_TRANSPORT_URL", url)
    with drop_in_world():
        yield


def bind(namespace: dict[str, object], kind: str, *classes: type) -> None:
    """Put a subclass of each oslo test class, bound to transport ``kind``, in a module."""
    for cls in classes:
        namespace[cls.__name__] = type(cls.__name__, (cls,), {
            "oslo_suite_transport": kind, "__module__": namespace["__name__"]})


__all__ = ["BASELINE", "bind"]
