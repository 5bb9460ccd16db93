"""builtin_middleware: free while telemetry is off, and every switch seen at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from relaybus import telemetry


@pytest.fixture(autouse=True)
def no_provider() -> Iterator[None]:
    saved = trace._TRACER_PROVIDER  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    telemetry.disable_metrics()
    yield
    trace._TRACER_PROVIDER = saved  # type: ignore[attr-defined]
    telemetry.disable_metrics()


def kinds() -> list[type]:
    return [type(layer) for layer in telemetry.builtin_middleware()]


def test_no_provider_and_no_metrics_build_nothing_and_keep_the_same_tuple() -> None:
    first = telemetry.builtin_middleware()
    assert first == () and telemetry.builtin_middleware() is first


def test_a_provider_and_the_metrics_switch_are_seen_by_the_next_message() -> None:
    assert kinds() == []
    provider = TracerProvider()
    trace._TRACER_PROVIDER = provider  # type: ignore[attr-defined]  # as set_tracer_provider
    assert kinds() == [telemetry.Tracing]
    tracing = telemetry.builtin_middleware()
    assert telemetry.builtin_middleware() is tracing  # unchanged: the same tuple
    telemetry.enable_metrics()
    assert kinds() == [telemetry.Tracing, telemetry.Metrics]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    assert kinds() == [telemetry.Metrics]
    telemetry.disable_metrics()
    assert kinds() == []


def test_without_a_provider_the_api_is_asked_again_at_most_once_a_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[float] = []
    now = [1e9]  # later than any lookup before this test
    monkeypatch.setattr(telemetry.time, "monotonic", lambda: now[0])

    def lookup() -> trace.TracerProvider:
        asked.append(now[0])
        return trace.ProxyTracerProvider()

    monkeypatch.setattr(trace, "get_tracer_provider", lookup)
    for _ in range(3):
        assert telemetry.builtin_middleware() == ()
    now[0] += telemetry.PROVIDER_RECHECK / 2
    assert telemetry.builtin_middleware() == ()
    now[0] += telemetry.PROVIDER_RECHECK
    assert telemetry.builtin_middleware() == ()
    assert asked == [1e9, 1e9 + telemetry.PROVIDER_RECHECK * 1.5]
