"""oslo.messaging's ``LoggingNotificationHandlerTestCase`` (ten scenarios: five priorities,
drivers ``messaging`` and ``messagingv2``) on ``fake://`` and RabbitMQ, each scenario in a
pytest process of its own, all at once.

Each scenario waits 15 s of silence after its notification (``get_events(timeout=15)``),
and they share ``cfg.CONF``, so they cannot overlap in one process; oslo runs its own suite
in parallel processes, each scenario on a topic of its own, the way this does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _oslo_tests import LOGGING_CLASSES

HERE = Path(__file__).parent
CHILD_TIMEOUT = 150.0


@pytest.mark.timeout(CHILD_TIMEOUT + 30)
def test_logging_scenarios(oslo_suite_vhost: str) -> None:
    env = {**os.environ, "RELAYBUS_OSLO_SUITE_CHILD": "1",
           "RELAYBUS_OSLO_SUITE_VHOST": oslo_suite_vhost}
    children = {}
    for kind in ("fake", "rabbit"):
        for cls in LOGGING_CLASSES:
            node = f"{HERE / f'test_functional_{kind}.py'}::{cls.__name__}::test_logging"
            children[f"{kind}::{cls.__name__}"] = subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "--no-header", "-p", "no:cacheprovider",
                 "-W", "ignore::DeprecationWarning", node],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failed = []
    for name, child in children.items():
        try:
            output, _ = child.communicate(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            output, _ = child.communicate()
        if child.returncode != 0 or "1 passed" not in output:
            failed.append(f"{name} (exit {child.returncode}):\n{output[-3000:]}")
    assert not failed, "\n\n".join(failed)
