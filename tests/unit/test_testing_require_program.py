"""relaybus.testing.brokers.require_program: a missing tool skips, or fails when brokers are
required (as CI requires them), and names what it was needed for."""

from __future__ import annotations

import pytest

from relaybus.testing.brokers import REQUIRE_ENV, require_program

MISSING = "relaybus-no-such-program"


def test_a_program_on_the_path_is_enough() -> None:
    require_program("sh")


def test_a_missing_program_skips_saying_what_it_was_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception,
                       match=f"{MISSING} is not installed \\(needed for a test node\\)"):
        require_program(MISSING, "for a test node")


def test_a_missing_program_fails_when_brokers_are_required(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{MISSING} is not installed"):
        require_program(MISSING)
