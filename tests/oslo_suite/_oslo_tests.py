"""oslo.messaging's functional test classes, imported unchanged from the installed wheel
with ``oslo_messaging`` resolving to relaybus's drop-in (see oslo_world)."""

from __future__ import annotations

import os
import warnings

from oslo_world import drop_in_world

with drop_in_world(), warnings.catch_warnings():
    # oslo's test utilities import eventlet-era modules that warn when imported
    warnings.simplefilter("ignore")
    from oslo_messaging.tests.functional.notify.test_logger import (
        LoggingNotificationHandlerTestCase,
    )
    from oslo_messaging.tests.functional.test_functional import (
        CallTestCase,
        CastTestCase,
        MetricsTestCase,
        NotifyTestCase,
    )


def _scenario_classes() -> list[type]:
    """testscenarios' ``load_tests`` expansion, which pytest does not run, done here:
    one subclass per scenario, with the scenario's attributes."""
    out = []
    for name, attrs in LoggingNotificationHandlerTestCase.scenarios:
        out.append(type(f"LoggingNotificationHandlerTestCase_{name.replace(',', '_')}",
                        (LoggingNotificationHandlerTestCase,), {**attrs, "scenarios": None}))
    return out


CLASSES = [CallTestCase, CastTestCase, NotifyTestCase, MetricsTestCase]
# test_logging waits for 15 s of silence after its one notification, by design (oslo runs
# its suite in parallel, each scenario on a topic of its own): ten scenarios in a row would
# take 160 s per transport. test_logging_scenarios.py runs each in a process of its own, all
# at once; a child process (RELAYBUS_OSLO_SUITE_CHILD=1) collects them here.
LOGGING_CLASSES = _scenario_classes()
if os.environ.get("RELAYBUS_OSLO_SUITE_CHILD") == "1":
    CLASSES += LOGGING_CLASSES
