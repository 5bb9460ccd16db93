"""Traces and metrics, as built-in middleware (see :mod:`relaybus.middleware`).

Telemetry uses only the middleware hooks any application can use: :func:`builtin_middleware`
is what every bus puts outside the application's own middleware. When no tracer provider is
installed and metrics are not enabled it is empty, so messages pay nothing for telemetry.

**Traces** (``opentelemetry-api``): a call or cast opens a CLIENT/PRODUCER span and puts the
W3C trace context (``traceparent``) into the message context, which travels as
``_context_traceparent`` exactly as oslo.messaging's tracing does; the server handles the
request in a SERVER/CONSUMER span continuing that trace, so notifications its endpoint
sends, and their listeners' spans, join the same trace.

**Metrics** (``prometheus-client``), once :func:`enable_metrics` is called, in the default
registry so applications expose them with their own: requests sent and handled by outcome,
timeouts, latency histograms per topic and method, requests in flight, notifications sent
and handled, messages rejected by middleware, reconnects (always counted).
``relaybus serve --metrics-port`` enables them and serves them over HTTP.
"""

from __future__ import annotations

import time
from typing import Any

from relaybus.errors import Rejected
from relaybus.middleware import Middleware, Next, NotificationInfo, RequestInfo

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


#: seconds between two lookups of the API's tracer provider while none is set
PROVIDER_RECHECK = 1.0


def _tracer_of(provider: Any) -> Any:
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
        self.rejected = metric(p.Counter, "relaybus_messages_rejected_total",
                               "Messages middleware rejected, by kind, side and reason",
                               "kind", "side", "topic", "reason")
        self.reconnects = metric(p.Counter, "relaybus_reconnects_total",
                                 "Connections re-established after a loss", "transport")


_metrics = _Metrics() if prometheus is not None else None


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    cause = getattr(exc, "cause", None)  # a cast its delivery policy gave up on: last error
    name = type(cause if isinstance(cause, BaseException) else exc).__name__
    return "timeout" if name == "MessagingTimeout" else name.removesuffix("_Remote")


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""


def _topics(notification: NotificationInfo) -> str:
    return ",".join(notification.topics)


class Tracing(Middleware):
    """Spans around sending and handling, and the W3C trace context carried in the context."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    async def send_request(self, request: RequestInfo, call_next: Next[RequestInfo]) -> Any:
        with self._tracer.start_as_current_span(
                f"{request.topic}.{request.method} {request.kind}",
                kind=SpanKind.CLIENT if request.kind == "call" else SpanKind.PRODUCER,
                attributes={"messaging.system": "relaybus",
                            "messaging.destination.name": request.topic,
                            "rpc.method": request.method,
                            "messaging.operation.type": "send"}) as span:
            propagate.inject(request.context)
            try:
                return await call_next(request)
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, _first_line(exc))
                raise

    async def handle_request(self, request: RequestInfo, call_next: Next[RequestInfo]) -> Any:
        with self._tracer.start_as_current_span(
                f"{request.topic} handle", context=propagate.extract(request.context),
                kind=SpanKind.SERVER if request.kind == "call" else SpanKind.CONSUMER,
                attributes={"messaging.system": "relaybus",
                            "messaging.destination.name": request.topic,
                            "messaging.operation.type": "process"}) as span:
            try:
                return await call_next(request)
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, _first_line(exc))
                raise
            finally:
                # junk method names never name a span: only those the server resolved
                method = request.method if request.resolved else UNKNOWN_METHOD
                span.update_name(f"{request.topic}.{method} handle")
                span.set_attribute("rpc.method", method)

    async def send_notification(self, notification: NotificationInfo,
                                call_next: Next[NotificationInfo]) -> Any:
        with self._tracer.start_as_current_span(
                f"{notification.event_type} notify", kind=SpanKind.PRODUCER,
                attributes={"messaging.system": "relaybus",
                            "messaging.destination.name": _topics(notification),
                            "relaybus.event_type": notification.event_type,
                            "relaybus.priority": notification.priority}):
            propagate.inject(notification.context)
            return await call_next(notification)

    async def handle_notification(self, notification: NotificationInfo,
                                  call_next: Next[NotificationInfo]) -> Any:
        with self._tracer.start_as_current_span(
                f"{notification.event_type} receive",
                context=propagate.extract(notification.context), kind=SpanKind.CONSUMER,
                attributes={"messaging.system": "relaybus",
                            "relaybus.event_type": notification.event_type,
                            "relaybus.priority": notification.priority}):
            return await call_next(notification)


class Metrics(Middleware):
    """Prometheus counters and histograms of what is sent and handled (see module doc)."""

    def __init__(self, metrics: _Metrics) -> None:
        self._m = metrics

    def _rejected(self, message: RequestInfo | NotificationInfo, topic: str,
                  exc: BaseException | None) -> None:
        if isinstance(exc, Rejected):
            self._m.rejected(message.kind, message.side, topic, type(exc).__name__).inc()

    async def send_request(self, request: RequestInfo, call_next: Next[RequestInfo]) -> Any:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await call_next(request)
        except BaseException as exc:
            error = exc
            self._rejected(request, request.topic, exc)
            raise
        finally:
            m = self._m
            m.sent(request.kind, request.topic, request.method, _outcome(error)).inc()
            if request.kind == "call":
                m.call_seconds(request.topic, request.method).observe(
                    time.perf_counter() - started)

    async def handle_request(self, request: RequestInfo, call_next: Next[RequestInfo]) -> Any:
        m = self._m
        started = time.perf_counter()
        error: BaseException | None = None
        in_flight = m.in_flight(request.topic)
        in_flight.inc()
        try:
            return await call_next(request)
        except BaseException as exc:
            error = exc
            self._rejected(request, request.topic, exc)
            raise
        finally:
            in_flight.dec()
            method = request.method if request.resolved else UNKNOWN_METHOD
            m.handled(request.topic, method, _outcome(error)).inc()
            m.handle_seconds(request.topic, method).observe(time.perf_counter() - started)

    async def send_notification(self, notification: NotificationInfo,
                                call_next: Next[NotificationInfo]) -> Any:
        try:
            message_id = await call_next(notification)
        except Rejected as exc:
            self._rejected(notification, _topics(notification), exc)
            raise
        self._m.notifications_sent(_topics(notification), notification.priority).inc()
        return message_id

    async def handle_notification(self, notification: NotificationInfo,
                                  call_next: Next[NotificationInfo]) -> Any:
        try:
            result = await call_next(notification)
        except Rejected as exc:
            self._rejected(notification, _topics(notification), exc)
            self._m.notifications_handled(notification.priority, "rejected").inc()
            raise
        self._m.notifications_handled(notification.priority,
                                      "requeued" if result == "requeue" else "handled").inc()
        return result


_metrics_on = [False]
#: what builtin_middleware last built: the tracer provider and metrics switch it saw, the
#: middleware built for them, until when a missing provider needs no new lookup, the tracer
_built: list[Any] = [None, False, (), float("-inf"), None]


def enable_metrics() -> None:
    """Record Prometheus metrics from now on (``relaybus serve --metrics-port`` does).

    Metrics are off until asked for, so an application that does not expose them pays
    nothing per message.

    Raises:
        RuntimeError: ``prometheus-client`` is not installed (extra ``relaybus[ops]``).
    """
    if _metrics is None:
        raise RuntimeError("metrics need prometheus-client: pip install 'relaybus[ops]'")
    _metrics_on[0] = True


def disable_metrics() -> None:
    """Stop recording metrics (those recorded stay in the registry)."""
    _metrics_on[0] = False


def metrics_enabled() -> bool:
    """Whether metrics are being recorded."""
    return _metrics_on[0]


def builtin_middleware() -> tuple[Middleware, ...]:
    """The telemetry middleware in effect now: tracing once a tracer provider is installed,
    metrics once enabled; empty (and free) otherwise.

    Cheap enough to ask on every message: while the tracer provider and the metrics switch
    stay as they were, the same tuple comes back without looking further. A provider set
    with ``trace.set_tracer_provider`` is seen at once; while none is set, the API's own
    lookup (which also reads the environment) runs at most once a second. With only the
    API installed (or no provider set), spans would record nothing, so there is no tracing
    middleware then.
    """
    provider = None if trace is None else getattr(trace, "_TRACER_PROVIDER", None)
    built = _built
    if (provider is built[0] and _metrics_on[0] is built[1]
            and (provider is not None or time.monotonic() < built[3])):
        layers: tuple[Middleware, ...] = built[2]
        return layers
    return _rebuild(provider)


def _rebuild(provider: Any) -> tuple[Middleware, ...]:
    """Look the tracer up again and build the middleware, if it changed."""
    tracer = None
    if trace is not None:
        tracer = _tracer_of(provider if provider is not None else trace.get_tracer_provider())
    metrics_on = _metrics_on[0]
    layers: tuple[Middleware, ...] = _built[2]
    if tracer is not _built[4] or metrics_on is not _built[1]:  # else the same tuple again
        built: list[Middleware] = []
        if tracer is not None:
            built.append(Tracing(tracer))
        if metrics_on and _metrics is not None:
            built.append(Metrics(_metrics))
        layers = tuple(built)
    _built[:] = [provider, metrics_on, layers, time.monotonic() + PROVIDER_RECHECK, tracer]
    return layers


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
