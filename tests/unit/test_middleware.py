"""Middleware around sending and handling requests and notifications, on memory://."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import prometheus_client
import pytest

import relaybus
import relaybus.sync
from relaybus import Target, telemetry
from relaybus.middleware import (
    HANDLE_NOTIFICATION,
    HANDLE_REQUEST,
    POINTS,
    SEND_NOTIFICATION,
    SEND_REQUEST,
    Next,
    Pipeline,
)
from relaybus.testing.behaviour import WAIT, Recorder


class Refused(relaybus.Rejected):
    """A typed reason, defined in this module (which clients may allow)."""


class Endpoint:
    def __init__(self, recorder: Recorder | None = None) -> None:
        self.recorder = recorder

    async def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value

    async def context(self, ctxt: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ctxt.items() if k != "client_timeout"}

    async def record(self, ctxt: dict[str, Any], value: Any) -> None:
        assert self.recorder is not None
        self.recorder.add(value)

    def broken(self, ctxt: dict[str, Any]) -> None:
        raise ValueError("broken endpoint")


class Audit:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.recorder.add((event_type, payload, ctxt))


class Trail(relaybus.Middleware):
    """Records entering and leaving every point, and what came back."""

    def __init__(self, name: str, trail: list[Any]) -> None:
        self.name = name
        self.trail = trail

    async def _around(self, message: Any, call_next: Any) -> Any:
        self.trail.append((self.name, "in", message.kind, message.side))
        result = await call_next(message)
        self.trail.append((self.name, "out", message.kind, message.side, result))
        return result

    async def send_request(self, request: relaybus.RequestInfo,
                           call_next: Next[relaybus.RequestInfo]) -> Any:
        return await self._around(request, call_next)

    async def handle_request(self, request: relaybus.RequestInfo,
                             call_next: Next[relaybus.RequestInfo]) -> Any:
        return await self._around(request, call_next)

    async def send_notification(self, notification: relaybus.NotificationInfo,
                                call_next: Next[relaybus.NotificationInfo]) -> Any:
        return await self._around(notification, call_next)

    async def handle_notification(self, notification: relaybus.NotificationInfo,
                                  call_next: Next[relaybus.NotificationInfo]) -> Any:
        return await self._around(notification, call_next)


@pytest.fixture
async def bus_with() -> AsyncIterator[Any]:
    buses: list[relaybus.Bus] = []

    async def make(*middleware: relaybus.Middleware, name: str = "mw") -> relaybus.Bus:
        bus = await relaybus.connect(f"memory://{name}", middleware=list(middleware))
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()


async def test_without_middleware_no_point_has_anything_to_run() -> None:
    # no tracer provider, metrics off: telemetry adds nothing either, so nothing is built
    async with await relaybus.connect("memory://bare") as bus:
        assert all(bus.pipeline.hooks(point) == () for point in POINTS)


async def test_every_point_runs_in_order_first_outermost(bus_with: Any) -> None:
    trail: list[Any] = []
    bus = await bus_with(Trail("a", trail), Trail("b", trail))
    recorder = Recorder()
    async with bus.rpc_server(Target(topic="t_order", server="s1"), [Endpoint()]), \
            bus.notification_listener([Target(topic="t_order_n")], [Audit(recorder)]):
        client = bus.rpc_client(Target(topic="t_order"), timeout=WAIT)
        assert await client.call({}, "echo", value=3) == 3
        calls = list(trail)
        trail.clear()
        message_id = await bus.notifier("p", topics=["t_order_n"]).info({}, "e.x", {})
        await recorder.wait_for(1)
    assert calls == [
        ("a", "in", "call", "send"), ("b", "in", "call", "send"),
        ("a", "in", "call", "handle"), ("b", "in", "call", "handle"),
        ("b", "out", "call", "handle", 3), ("a", "out", "call", "handle", 3),
        ("b", "out", "call", "send", 3), ("a", "out", "call", "send", 3)]
    sent = [t for t in trail if t[3] == "send"]
    assert sent[-1] == ("a", "out", "notification", "send", message_id)
    handled = [t for t in trail if t[3] == "handle"]
    assert handled == [("a", "in", "notification", "handle"),
                       ("b", "in", "notification", "handle"),
                       ("b", "out", "notification", "handle", "handled"),
                       ("a", "out", "notification", "handle", "handled")]


class AddContext(relaybus.Middleware):
    async def send_request(self, request: relaybus.RequestInfo,
                           call_next: Next[relaybus.RequestInfo]) -> Any:
        assert request.context["user"] == "u"  # reads what the caller gave
        request.context["sent_by"] = "client-mw"
        return await call_next(request)

    async def handle_request(self, request: relaybus.RequestInfo,
                             call_next: Next[relaybus.RequestInfo]) -> Any:
        assert request.context["sent_by"] == "client-mw"  # it travelled
        request.context["seen_by"] = "server-mw"
        return await call_next(request)

    async def send_notification(self, notification: relaybus.NotificationInfo,
                                call_next: Next[relaybus.NotificationInfo]) -> Any:
        notification.context["sent_by"] = "notifier-mw"
        return await call_next(notification)

    async def handle_notification(self, notification: relaybus.NotificationInfo,
                                  call_next: Next[relaybus.NotificationInfo]) -> Any:
        notification.context["seen_by"] = "listener-mw"
        return await call_next(notification)


async def test_middleware_reads_and_adds_context(bus_with: Any) -> None:
    bus = await bus_with(AddContext())
    recorder = Recorder()
    async with bus.rpc_server(Target(topic="t_ctx", server="s1"), [Endpoint()]), \
            bus.notification_listener([Target(topic="t_ctx_n")], [Audit(recorder)]):
        client = bus.rpc_client(Target(topic="t_ctx"), timeout=WAIT)
        ctxt = await client.call({"user": "u"}, "context")
        await bus.notifier("p", topics=["t_ctx_n"]).info({"user": "u"}, "e.x", {"n": 1})
        ((_, payload, note_ctxt),) = await recorder.wait_for(1)
    assert ctxt == {"user": "u", "sent_by": "client-mw", "seen_by": "server-mw"}
    assert payload == {"n": 1}
    assert note_ctxt["sent_by"] == "notifier-mw" and note_ctxt["seen_by"] == "listener-mw"


class RejectHandling(relaybus.Middleware):
    def __init__(self, error: relaybus.Rejected) -> None:
        self.error = error

    async def handle_request(self, request: relaybus.RequestInfo,
                             call_next: Next[relaybus.RequestInfo]) -> Any:
        raise self.error

    async def handle_notification(self, notification: relaybus.NotificationInfo,
                                  call_next: Next[relaybus.NotificationInfo]) -> Any:
        raise self.error


async def test_a_rejected_call_comes_back_with_its_type(bus_with: Any) -> None:
    bus = await bus_with(RejectHandling(Refused("not for you")))
    async with bus.rpc_server(Target(topic="t_rej", server="s1"), [Endpoint()]) as server:
        allowed = bus.rpc_client(Target(topic="t_rej"), timeout=WAIT,
                                 allowed_remote_exmods=[__name__])
        with pytest.raises(Refused, match="not for you"):
            await allowed.call({}, "echo", value=1)
        # a client that may not rebuild it still learns the type's name
        other = bus.rpc_client(Target(topic="t_rej"), timeout=WAIT)
        with pytest.raises(relaybus.RemoteError) as caught:
            await other.call({}, "echo", value=1)
        assert caught.value.exc_type == "Refused"
    assert server.rejections.counts == {"Refused": 2}


async def test_plain_rejected_is_rebuilt_everywhere(bus_with: Any) -> None:
    bus = await bus_with(RejectHandling(relaybus.Rejected("closed")))
    async with bus.rpc_server(Target(topic="t_rej_plain", server="s1"), [Endpoint()]):
        with pytest.raises(relaybus.Rejected, match="closed"):
            await bus.rpc_client(Target(topic="t_rej_plain"), timeout=WAIT).call({}, "echo",
                                                                               value=1)


def _rejection_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if "rejected by middleware" in r.getMessage() and r.levelno == level]


async def test_rejected_casts_are_counted_and_logged_once(
        bus_with: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="relaybus")

    class OnlyEven(relaybus.Middleware):
        async def handle_request(self, request: relaybus.RequestInfo,
                                 call_next: Next[relaybus.RequestInfo]) -> Any:
            if request.args["value"] % 2:
                raise Refused(f"{request.args['value']} is odd")
            return await call_next(request)

    bus = await bus_with(OnlyEven())
    recorder = Recorder()
    async with bus.rpc_server(Target(topic="t_cast", server="s1"),
                              [Endpoint(recorder)]) as server:
        client = bus.rpc_client(Target(topic="t_cast"))
        for value in (1, 3, 5, 2):
            await client.cast({}, "record", value=value)
        assert await recorder.wait_for(1) == [2]  # casts are taken in order on memory://
    assert server.rejections.counts == {"Refused": 3}
    (warning,) = _rejection_lines(caplog, logging.WARNING)
    assert "cast record" in warning and "Refused: 1 is odd" in warning
    assert len(_rejection_lines(caplog, logging.DEBUG)) == 2


async def test_a_rejected_notification_is_acknowledged_not_dead_lettered(
        bus_with: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="relaybus")

    class DropSpam(relaybus.Middleware):
        async def handle_notification(self, notification: relaybus.NotificationInfo,
                                      call_next: Next[relaybus.NotificationInfo]) -> Any:
            if notification.event_type == "spam":
                raise Refused("spam")
            return await call_next(notification)

    bus = await bus_with(DropSpam())
    plain = await relaybus.connect("memory://mw")  # the dead-letter watcher, no middleware
    recorder, dead = Recorder(), Recorder()
    try:
        async with bus.notification_listener(
                [Target(topic="t_note")], [Audit(recorder)],
                dead_letter_topic="t_note_dead") as listener, \
                plain.notification_listener([Target(topic="t_note_dead")], [Audit(dead)]):
            notifier = bus.notifier("p", topics=["t_note"])
            await notifier.info({}, "spam", {"n": 1})
            await notifier.info({}, "spam", {"n": 2})
            await notifier.info({}, "ham", {"n": 3})
            assert [event for event, _, _ in await recorder.wait_for(1)] == ["ham"]
    finally:
        await plain.close()
    assert listener.rejections.counts == {"Refused": 2}
    assert dead.items == []  # nothing was dead-lettered...
    assert len(_rejection_lines(caplog, logging.WARNING)) == 1  # ...and it said so once
    assert len(_rejection_lines(caplog, logging.DEBUG)) == 1


async def test_a_rejected_cast_is_not_retried_nor_dead_lettered(bus_with: Any) -> None:
    class RefuseRecord(relaybus.Middleware):
        async def handle_request(self, request: relaybus.RequestInfo,
                                 call_next: Next[relaybus.RequestInfo]) -> Any:
            if request.method == "record":
                raise Refused("no recording")
            return await call_next(request)

    class Letters(Audit):
        error = Audit.info  # cast dead letters are ERROR notifications

    bus = await bus_with(RefuseRecord())
    letters = Recorder()
    policy = relaybus.DeliveryPolicy(attempts=3, backoff=0.01, dead_letter="t_dl_dlq")
    async with bus.notification_listener([Target(topic="t_dl_dlq")], [Letters(letters)]), \
            bus.rpc_server(Target(topic="t_dl", server="s1"), [Endpoint(Recorder())],
                           delivery=policy) as server:
        client = bus.rpc_client(Target(topic="t_dl"))
        await client.cast({}, "record", value=1)
        await client.cast({}, "broken")  # fails three times, then is dead-lettered
        ((_, payload, _),) = await letters.wait_for(1)
    assert payload["method"] == "broken"  # the only dead letter: the rejected one is not
    assert server.rejections.counts == {"Refused": 1}


async def test_a_send_side_rejection_sends_nothing(bus_with: Any) -> None:
    class NoSending(relaybus.Middleware):
        async def send_request(self, request: relaybus.RequestInfo,
                               call_next: Next[relaybus.RequestInfo]) -> Any:
            raise Refused("read-only mode")

        async def send_notification(self, notification: relaybus.NotificationInfo,
                                    call_next: Next[relaybus.NotificationInfo]) -> Any:
            raise Refused("read-only mode")

    bus = await bus_with(NoSending())
    plain = await relaybus.connect("memory://mw")
    recorder = Recorder()
    try:
        async with bus.rpc_server(Target(topic="t_send", server="s1"), [Endpoint(recorder)]):
            with pytest.raises(Refused):
                await bus.rpc_client(Target(topic="t_send")).cast({}, "record", value=1)
            with pytest.raises(Refused):
                await bus.notifier("p", topics=["t_send_n"]).info({}, "e.x", {})
            # a bus without it still gets through, and is the only one the server saw
            await plain.rpc_client(Target(topic="t_send")).cast({}, "record", value=2)
            assert await recorder.wait_for(1) == [2]
    finally:
        await plain.close()


async def test_hooks_sync_and_async_before_after_on_error(bus_with: Any) -> None:
    seen: list[Any] = []

    def before(message: Any) -> None:
        seen.append(("before", message.kind, message.side, message.method))

    async def after(message: Any, result: Any) -> None:
        await asyncio.sleep(0)
        seen.append(("after", message.side, result))

    def on_error(message: Any, exc: BaseException) -> None:
        seen.append(("error", message.side, type(exc).__name__))

    hooks = relaybus.Hooks(before=before, after=after, on_error=on_error,
                           points=[HANDLE_REQUEST])
    bus = await bus_with(hooks)
    async with bus.rpc_server(Target(topic="t_hooks", server="s1"), [Endpoint()]):
        client = bus.rpc_client(Target(topic="t_hooks"), timeout=WAIT)
        assert await client.call({}, "echo", value=5) == 5
        with pytest.raises(ValueError, match="broken endpoint"):
            await client.call({}, "broken")
    assert seen == [("before", "call", "handle", "echo"), ("after", "handle", 5),
                    ("before", "call", "handle", "broken"), ("error", "handle", "ValueError")]
    assert bus.pipeline.hooks(SEND_REQUEST) == ()  # only the points asked for


async def test_a_hook_rejects_and_a_middleware_times_and_replaces_results(
        bus_with: Any) -> None:
    timings: list[tuple[str, float]] = []

    def tenant_check(message: Any) -> None:
        if message.context.get("tenant") != "acme":
            raise Refused("wrong tenant")

    class Timer(relaybus.Middleware):
        async def handle_request(self, request: relaybus.RequestInfo,
                                 call_next: Next[relaybus.RequestInfo]) -> Any:
            started = asyncio.get_running_loop().time()
            try:
                return await call_next(request)
            finally:
                timings.append((request.method,
                                asyncio.get_running_loop().time() - started))

    class Doubler(relaybus.Middleware):
        async def send_request(self, request: relaybus.RequestInfo,
                               call_next: Next[relaybus.RequestInfo]) -> Any:
            return 2 * await call_next(request)

    bus = await bus_with(Timer(), relaybus.Hooks(before=tenant_check, points=[HANDLE_REQUEST]),
                         Doubler())
    async with bus.rpc_server(Target(topic="t_time", server="s1"), [Endpoint()]):
        client = bus.rpc_client(Target(topic="t_time"), timeout=WAIT,
                                allowed_remote_exmods=[__name__])
        assert await client.call({"tenant": "acme"}, "echo", value=4) == 8
        with pytest.raises(Refused, match="wrong tenant"):
            await client.call({"tenant": "other"}, "echo", value=4)
    assert [method for method, _ in timings] == ["echo", "echo"]
    assert all(seconds >= 0 for _, seconds in timings)


async def test_a_failing_middleware_never_loops_a_notification(
        bus_with: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(relaybus.Middleware):
        async def handle_notification(self, notification: relaybus.NotificationInfo,
                                      call_next: Next[relaybus.NotificationInfo]) -> Any:
            if notification.payload["n"] == 1:
                raise RuntimeError("middleware bug")
            return await call_next(notification)

    bus = await bus_with(Broken())
    recorder = Recorder()
    async with bus.notification_listener([Target(topic="t_broken")], [Audit(recorder)]):
        notifier = bus.notifier("p", topics=["t_broken"])
        await notifier.info({}, "e.x", {"n": 1})
        await notifier.info({}, "e.x", {"n": 2})
        assert [payload for _, payload, _ in await recorder.wait_for(1)] == [{"n": 2}]
    assert any("middleware failed" in r.getMessage() for r in caplog.records)


async def test_requeue_travels_through_the_chain(bus_with: Any) -> None:
    results: list[str] = []

    class Watch(relaybus.Middleware):
        async def handle_notification(self, notification: relaybus.NotificationInfo,
                                      call_next: Next[relaybus.NotificationInfo]) -> Any:
            result = await call_next(notification)
            results.append(result)
            return result

    class Once:
        def __init__(self) -> None:
            self.calls = 0
            self.recorder = Recorder()

        async def info(self, *args: Any) -> relaybus.NotificationResult:
            self.calls += 1
            self.recorder.add(self.calls)
            return (relaybus.NotificationResult.REQUEUE if self.calls == 1
                    else relaybus.NotificationResult.HANDLED)

    bus = await bus_with(Watch())
    endpoint = Once()
    async with bus.notification_listener([Target(topic="t_requeue")], [endpoint]):
        await bus.notifier("p", topics=["t_requeue"]).info({}, "e.x", {})
        await endpoint.recorder.wait_for(2)
    assert results[:2] == ["requeue", "handled"]


def _sample(name: str, labels: dict[str, str]) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_rejections_are_counted_in_metrics(bus_with: Any) -> None:
    telemetry.enable_metrics()
    try:
        bus = await bus_with(RejectHandling(Refused("no")))
        assert bus.pipeline.hooks(HANDLE_REQUEST)[0].__self__.__class__ is telemetry.Metrics
        labels = {"kind": "cast", "side": "handle", "topic": "t_metric", "reason": "Refused"}
        before = _sample("relaybus_messages_rejected_total", labels)
        handled = {"topic": "t_metric", "method": "echo", "outcome": "Refused"}
        before_handled = _sample("relaybus_rpc_requests_handled_total", handled)
        async with bus.rpc_server(Target(topic="t_metric", server="s1"), [Endpoint()]) \
                as server:
            await bus.rpc_client(Target(topic="t_metric")).cast({}, "echo", value=1)
            while not server.rejections.counts:  # noqa: ASYNC110 - no event for a rejection
                await asyncio.sleep(0.01)
    finally:
        telemetry.disable_metrics()
    assert _sample("relaybus_messages_rejected_total", labels) == before + 1
    # the server looked the method up before the chain ran, so it is named in the metrics
    assert _sample("relaybus_rpc_requests_handled_total", handled) == before_handled + 1


def test_the_pipeline_takes_only_middleware() -> None:
    with pytest.raises(TypeError, match=r"relaybus\.Middleware"):
        Pipeline([object()])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list"):
        Pipeline(relaybus.Hooks())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="points"):
        relaybus.Hooks(points=["sending"])
    assert relaybus.Hooks(points=[SEND_NOTIFICATION]).wraps(SEND_NOTIFICATION)
    assert not relaybus.Hooks(points=[SEND_NOTIFICATION]).wraps(HANDLE_NOTIFICATION)


def test_the_sync_facade_takes_middleware() -> None:
    trail: list[Any] = []
    with relaybus.sync.connect("memory://mw-sync", middleware=[Trail("a", trail)]) as bus:
        with bus.rpc_server(Target(topic="t_sync", server="s1"), [Endpoint()]):
            assert bus.rpc_client(Target(topic="t_sync"), timeout=WAIT).call(
                {}, "echo", value=1) == 1
    assert [t[:4] for t in trail] == [("a", "in", "call", "send"), ("a", "in", "call", "handle"),
                                      ("a", "out", "call", "handle"),
                                      ("a", "out", "call", "send")]
