"""Traces across a call, its server and the notifications it causes; Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import prometheus_client
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import relaybus
from relaybus import Target, telemetry
from relaybus.testing.behaviour import WAIT, Recorder

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider() -> Iterator[None]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    yield
    # OpenTelemetry lets a process set its provider once; undo it (private state, tests
    # only) so that later tests run untraced, as an application without tracing would.
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER_SET_ONCE._done = False  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def clear_spans() -> None:
    EXPORTER.clear()


class Orders:
    def __init__(self, notifier: relaybus.Notifier) -> None:
        self.notifier = notifier

    async def place(self, ctxt: Any, item: str) -> str:
        await self.notifier.info(ctxt, "order.placed", {"item": item})
        return f"placed {item}"

    async def broken(self, ctxt: Any) -> None:
        raise ValueError("no")


class Audit:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.recorder.add(ctxt)


async def test_call_server_and_notification_form_one_trace() -> None:
    recorder = Recorder()
    async with await relaybus.connect("memory://otel") as bus:
        orders = Orders(bus.notifier("orders.h1", topics=["otel_n"]))
        async with bus.notification_listener([Target(topic="otel_n")], [Audit(recorder)]), \
                bus.rpc_server(Target(topic="orders", server="s1"), [orders]):
            client = bus.rpc_client(Target(topic="orders"), timeout=WAIT)
            assert await client.call({"user": "u"}, "place", item="tea") == "placed tea"
            (ctxt,) = await recorder.wait_for(1)
    spans = {s.name: s for s in EXPORTER.get_finished_spans()}
    call, handle = spans["orders.place call"], spans["orders.place handle"]
    notify, receive = spans["order.placed notify"], spans["order.placed receive"]
    trace_id = call.context.trace_id
    assert {s.context.trace_id for s in (handle, notify, receive)} == {trace_id}
    assert handle.parent.span_id == call.context.span_id
    assert notify.parent.span_id == handle.context.span_id
    assert receive.parent.span_id == notify.context.span_id
    assert (call.kind, handle.kind, notify.kind, receive.kind) == \
        (SpanKind.CLIENT, SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert ctxt["traceparent"].startswith("00-")  # W3C trace context in the message context


async def test_errors_mark_the_spans() -> None:
    async with await relaybus.connect("memory://otel-err") as bus:
        async with bus.rpc_server(Target(topic="orders_err", server="s1"), [Orders(None)]):
            with pytest.raises(ValueError):
                await bus.rpc_client(Target(topic="orders_err"), timeout=WAIT).call(
                    {}, "broken")
    spans = {s.name: s for s in EXPORTER.get_finished_spans()}
    assert not spans["orders_err.broken call"].status.is_ok
    assert not spans["orders_err.broken handle"].status.is_ok


@pytest.fixture
def metrics_on() -> Iterator[None]:
    """Metrics are recorded once asked for (``relaybus serve --metrics-port`` asks)."""
    telemetry.enable_metrics()
    yield
    telemetry.disable_metrics()


def _value(name: str, labels: dict[str, str]) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.usefixtures("metrics_on")
async def test_metrics_count_calls_casts_errors_and_unknown_methods() -> None:
    labels = {"topic": "metered", "method": "place"}
    before_ok = _value("relaybus_rpc_requests_sent_total", {"kind": "call", **labels,
                                                            "outcome": "ok"})
    before_handled = _value("relaybus_rpc_requests_handled_total", {**labels, "outcome": "ok"})
    before_unknown = _value("relaybus_rpc_requests_handled_total",
                            {"topic": "metered", "method": "<unknown>",
                             "outcome": "NoSuchMethod"})
    async with await relaybus.connect("memory://metrics") as bus:
        orders = Orders(bus.notifier("orders.h1", driver="noop"))
        async with bus.rpc_server(Target(topic="metered", server="s1"), [orders]):
            client = bus.rpc_client(Target(topic="metered"), timeout=WAIT)
            for _ in range(3):
                await client.call({}, "place", item="x")
            with pytest.raises(relaybus.NoSuchMethod):
                await client.call({}, "junk_method_name")
    assert _value("relaybus_rpc_requests_sent_total",
                  {"kind": "call", **labels, "outcome": "ok"}) == before_ok + 3
    assert _value("relaybus_rpc_requests_handled_total",
                  {**labels, "outcome": "ok"}) == before_handled + 3
    assert _value("relaybus_rpc_requests_handled_total",
                  {"topic": "metered", "method": "<unknown>", "outcome": "NoSuchMethod"}) \
        == before_unknown + 1
    assert _value("relaybus_rpc_call_duration_seconds_count", labels) >= 3
    assert _value("relaybus_rpc_in_flight", {"topic": "metered"}) == 0


async def test_telemetry_is_middleware_outside_the_applications() -> None:
    seen: list[str] = []

    class Rejecting(relaybus.Middleware):
        async def handle_request(self, request: relaybus.RequestInfo, call_next: Any) -> Any:
            seen.append(trace.get_current_span().name)  # inside relaybus's server span
            raise relaybus.Rejected("closed")

    async with await relaybus.connect("memory://otel-mw", middleware=[Rejecting()]) as bus:
        async with bus.rpc_server(Target(topic="otel_mw", server="s1"), [Orders(None)]):
            with pytest.raises(relaybus.Rejected):
                await bus.rpc_client(Target(topic="otel_mw"), timeout=WAIT).call({}, "place",
                                                                                item="x")
    assert seen == ["otel_mw handle"]
    spans = {s.name: s for s in EXPORTER.get_finished_spans()}
    handle = spans["otel_mw.place handle"]  # named after the method the server resolved
    assert not handle.status.is_ok and handle.events[0].name == "exception"
    assert not spans["otel_mw.place call"].status.is_ok
