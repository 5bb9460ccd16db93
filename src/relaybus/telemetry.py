"""Traces and metrics, when their libraries are installed; nothing otherwise.

**Traces** (``opentelemetry-api``): a call or cast opens a CLIENT/PRODUCER span and puts the
W3C trace context (``traceparent``) into the message context, which travels as
``_context_traceparent`` exactly as oslo.messaging's tracing does; the server handles the
request in a SERVER/CONSUMER span continuing that trace, so notifications its endpoint
sends, and their listeners' spans, join the same trace.

**Metrics** (``prometheus-client``), in the default registry so applications expose them
with their own: requests sent and handled by outcome, timeouts, latency histograms per
topic and method, requests in flight, notifications sent and handled, reconnects.
``relaybus serve --metrics-port`` serves them over HTTP.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, StatusCode
except ImportError:  # pragma: no cover - exercised by installs without the extra
    trace = None  # type: ignore[assignment]

try:
    import prometheus_client as prometheus
except ImportError:  # pragma: no cover
    prometheus = None  # type: ignore[assignment]

UNKNOWN_METHOD = "<unknown>"
_tracer_for: dict[int, Any] = {}


_provider_seen: list[Any] = [None, 0.0]  # (provider, when it was looked up)
PROVIDER_RECHECK = 1.0


def _active_tracer() -> Any:
    """The relaybus tracer, or None until the application installs a tracer provider.

    With only the API installed (or no provider set), spans would record nothing; skipping
    them keeps the hot path free of tracing costs. A provider set with
    ``trace.set_tracer_provider`` is seen at once; the API's own lookup (which also reads
    the environment) runs at most once a second.
    """
    if trace is None:
        return None
    provider = getattr(trace, "_TRACER_PROVIDER", None)
    if provider is None:
        now = time.monotonic()
        if now - _provider_seen[1] > PROVIDER_RECHECK:
            _provider_seen[0], _provider_seen[1] = trace.get_tracer_provider(), now
        provider = _provider_seen[0]
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    tracer = _tracer_for.get(id(provider))
    if tracer is None:
        tracer = _tracer_for[id(provider)] = provider.get_tracer("relaybus")
    return tracer


class _Children:
    """Cached label children of a metric: ``labels()`` costs more than a dict lookup."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        return child


class _Metrics:
    def __init__(self) -> None:
        assert prometheus is not None
        p = prometheus

        def metric(kind: Any, name: str, doc: str, *labels: str) -> _Children:
            return _Children(kind(name, doc, list(labels)))

        self.sent = metric(p.Counter, "relaybus_rpc_requests_sent_total",
                           "RPC requests sent, by kind (call/cast) and outcome",
                           "kind", "topic", "method", "outcome")
        self.call_seconds = metric(p.Histogram, "relaybus_rpc_call_duration_seconds",
                                   "Time from sending a call to its reply", "topic", "method")
        self.handled = metric(p.Counter, "relaybus_rpc_requests_handled_total",
                              "RPC requests a server handled, by outcome",
                              "topic", "method", "outcome")
        self.handle_seconds = metric(p.Histogram, "relaybus_rpc_handle_duration_seconds",
                                     "Time a server spent on a request", "topic", "method")
        self.in_flight = metric(p.Gauge, "relaybus_rpc_in_flight",
                                "Requests a server is handling now", "topic")
        self.notifications_sent = metric(p.Counter, "relaybus_notifications_sent_total",
                                         "Notifications sent", "topic", "priority")
        self.notifications_handled = metric(p.Counter, "relaybus_notifications_handled_total",
                                            "Notifications a listener handled, by outcome",
                                            "priority", "outcome")
        self.reconnects = metric(p.Counter, "relaybus_reconnects_total",
                                 "Connections re-established after a loss", "transport")


_metrics = _Metrics() if prometheus is not None else None


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    name = type(exc).__name__
    return "timeout" if name == "MessagingTimeout" else name.removesuffix("_Remote")


@contextlib.contextmanager
def sending(kind: str, topic: str, method: str,
            context: MutableMapping[str, Any]) -> Iterator[None]:
    """Around sending a call or cast: a span, the trace context injected, metrics."""
    started = time.perf_counter()
    error: BaseException | None = None
    span_cm: Any = contextlib.nullcontext()
    tracer = _active_tracer()
    if tracer is not None:
        span_cm = tracer.start_as_current_span(
            f"{topic}.{method} {kind}",
            kind=SpanKind.CLIENT if kind == "call" else SpanKind.PRODUCER,
            attributes={"messaging.system": "relaybus", "messaging.destination.name": topic,
                        "rpc.method": method, "messaging.operation.type": "send"})
    with span_cm as span:
        if tracer is not None:
            propagate.inject(context)
        try:
            yield
        except BaseException as exc:
            error = exc
            if span is not None:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, str(exc).splitlines()[0] if str(exc) else "")
            raise
        finally:
            if _metrics is not None:
                _metrics.sent(kind, topic, method, _outcome(error)).inc()
                if kind == "call":
                    _metrics.call_seconds(topic, method).observe(
                        time.perf_counter() - started)


@contextlib.contextmanager
def handling(topic: str, context: dict[str, Any], expects_reply: bool) -> Iterator[
        dict[str, str]]:
    """Around a server handling a request: the caller's trace continued, metrics.

    Yields a dict whose ``method`` the server sets once it knows the request is valid (so
    that junk method names never become metric labels).
    """
    labels = {"method": UNKNOWN_METHOD}
    started = time.perf_counter()
    error: BaseException | None = None
    span_cm: Any = contextlib.nullcontext()
    tracer = _active_tracer()
    if tracer is not None:
        span_cm = tracer.start_as_current_span(
            f"{topic} handle", context=propagate.extract(context),
            kind=SpanKind.SERVER if expects_reply else SpanKind.CONSUMER,
            attributes={"messaging.system": "relaybus", "messaging.destination.name": topic,
                        "messaging.operation.type": "process"})
    if _metrics is not None:
        _metrics.in_flight(topic).inc()
    with span_cm as span:
        try:
            yield labels
        except BaseException as exc:
            error = exc
            if span is not None:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR)
            raise
        finally:
            if span is not None:
                span.update_name(f"{topic}.{labels['method']} handle")
                span.set_attribute("rpc.method", labels["method"])
                if "error" in labels:
                    span.set_status(StatusCode.ERROR, labels["error"])
            if _metrics is not None:
                _metrics.in_flight(topic).dec()
                _metrics.handled(topic, labels["method"],
                                        labels.get("error", _outcome(error))).inc()
                _metrics.handle_seconds(topic, labels["method"]).observe(
                    time.perf_counter() - started)


@contextlib.contextmanager
def notifying(topic: str, event_type: str, priority: str,
              context: MutableMapping[str, Any]) -> Iterator[None]:
    """Around sending a notification: a PRODUCER span, the trace context injected."""
    span_cm: Any = contextlib.nullcontext()
    tracer = _active_tracer()
    if tracer is not None:
        span_cm = tracer.start_as_current_span(
            f"{event_type} notify", kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "relaybus", "messaging.destination.name": topic,
                        "relaybus.event_type": event_type, "relaybus.priority": priority})
    with span_cm:
        if tracer is not None:
            propagate.inject(context)
        yield
    if _metrics is not None:
        _metrics.notifications_sent(topic, priority).inc()


@contextlib.contextmanager
def receiving_notification(event_type: str, priority: str,
                           context: dict[str, Any]) -> Iterator[dict[str, str]]:
    """Around a listener handling a notification: a CONSUMER span in the sender's trace."""
    outcome = {"outcome": "handled"}
    span_cm: Any = contextlib.nullcontext()
    tracer = _active_tracer()
    if tracer is not None:
        span_cm = tracer.start_as_current_span(
            f"{event_type} receive", context=propagate.extract(context), kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "relaybus", "relaybus.event_type": event_type,
                        "relaybus.priority": priority})
    with span_cm:
        yield outcome
    if _metrics is not None:
        _metrics.notifications_handled(priority, outcome["outcome"]).inc()


def count_reconnect(transport: str) -> None:
    """Drivers call this after re-establishing a lost connection."""
    if _metrics is not None:
        _metrics.reconnects(transport).inc()


# -- delivery policies (relaybus.delivery): kept apart so it rebases on any telemetry ------

_DELIVERY_DOCS = {
    "retries": "Handler runs retried under a delivery policy, by target and error",
    "dead_letters": "Messages given up on and dead-lettered, by target and error",
    "delayed": "Messages sent with a delay, by target and delay bucket",
}
_delivery_metrics: dict[str, _Children] = {}


def count_delivery(what: str, target: str, reason: str) -> None:
    """Count a retry, a dead letter or a delayed message (``what``: a key of the docs)."""
    if prometheus is None:
        return
    metric = _delivery_metrics.get(what)
    if metric is None:
        metric = _delivery_metrics[what] = _Children(prometheus.Counter(
            f"relaybus_delivery_{what}_total", _DELIVERY_DOCS[what], ["target", "reason"]))
    metric(target, reason).inc()
