"""oslo.messaging's own unit tests of its public API, unchanged, against the drop-in.

Chosen from the wheel's ``oslo_messaging/tests``: the modules that test only public names
(``Target`` construction, calling, repr and equality; ``TransportURL`` parsing and
formatting; ``expected_exceptions``), with their testscenarios expanded. The others
(``rpc/``, ``notify/``, ``drivers/``, ``test_transport.py``...) patch oslo's private
modules (``_drivers``, the executor, stevedore's driver manager) and so test oslo's
internals rather than a contract a service relies on.
"""

from __future__ import annotations

import importlib
import unittest
import warnings

import pytest
import testscenarios
from oslo_world import drop_in_world

MODULES = ["test_target", "test_urls", "test_expected_exceptions"]


@pytest.mark.parametrize("module", MODULES)
def test_oslo_api_unit_tests(module: str) -> None:
    with drop_in_world(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tests = importlib.import_module(f"oslo_messaging.tests.{module}")
        suite = unittest.TestSuite()
        for case in unittest.defaultTestLoader.loadTestsFromModule(tests):
            suite.addTests(testscenarios.generate_scenarios(case))
        result = unittest.TestResult()
        suite.run(result)
    problems = [f"{test.id()}:\n{text}" for test, text in result.failures + result.errors]
    assert result.testsRun > 0
    assert not problems, "\n\n".join(problems)
