"""The middleware part of the behaviour suite: what middleware does the same on every transport.

Context a middleware adds while sending crosses the wire to the handling side; a rejected
call comes back to its caller with its type; a rejected cast or notification is counted and
acknowledged, so it is never redelivered. Bind it like the rest of the suite::

    class TestMyMiddleware(MiddlewareBehaviour):
        transport_url = "mine://127.0.0.1:1234/"

Notifications go to the test's own ``topic`` (one JetStream stream a binding can delete).
"""

from __future__ import annotations

from typing import Any

import relaybus
from relaybus import Target
from relaybus.middleware import Next
from relaybus.testing.behaviour import WAIT, Compute, Listener, Recorder, _Suite

HERE = __name__


class Refused(relaybus.Rejected):
    """The typed reason the suite's middleware rejects with."""


class Stamp(relaybus.Middleware):
    """Adds ``stamped_by`` to the context of everything sent."""

    async def send_request(self, request: relaybus.RequestInfo,
                           call_next: Next[relaybus.RequestInfo]) -> Any:
        request.context["stamped_by"] = "sender"
        return await call_next(request)

    async def send_notification(self, notification: relaybus.NotificationInfo,
                                call_next: Next[relaybus.NotificationInfo]) -> Any:
        notification.context["stamped_by"] = "sender"
        return await call_next(notification)


class Gate(relaybus.Middleware):
    """Handles only what the sender stamped, and not ``spam``; adds ``gated`` to the context.

    What it refuses goes to :attr:`refused` too, so a test can await a rejection.
    """

    def __init__(self) -> None:
        self.refused = Recorder()

    def _check(self, context: dict[str, Any], what: str) -> None:
        if context.get("stamped_by") != "sender":
            self.refused.add(what)
            raise Refused(f"{what} was not stamped")
        if what == "spam":
            self.refused.add(what)
            raise Refused("spam is refused")
        context["gated"] = True

    async def handle_request(self, request: relaybus.RequestInfo,
                             call_next: Next[relaybus.RequestInfo]) -> Any:
        self._check(request.context, request.method)
        return await call_next(request)

    async def handle_notification(self, notification: relaybus.NotificationInfo,
                                  call_next: Next[relaybus.NotificationInfo]) -> Any:
        self._check(notification.context, notification.event_type)
        return await call_next(notification)


class MiddlewareBehaviour(_Suite):
    """Context across the wire, typed rejections, rejected messages settled once."""

    async def test_context_added_while_sending_reaches_the_other_side(
            self, make_bus: Any, topic: str) -> None:
        server_bus = await make_bus(middleware=[Gate()])
        client_bus = await make_bus(middleware=[Stamp()])
        async with server_bus.rpc_server(Target(topic=topic, server="s1"), [Compute()]):
            client = client_bus.rpc_client(Target(topic=topic), timeout=WAIT)
            ctxt = await client.call({"user": "u"}, "get_context")
        assert (ctxt["user"], ctxt["stamped_by"], ctxt["gated"]) == ("u", "sender", True)

    async def test_a_rejected_call_comes_back_with_its_type(self, make_bus: Any,
                                                            topic: str) -> None:
        server_bus = await make_bus(middleware=[Gate()])
        client_bus = await make_bus()  # stamps nothing: every call is refused
        async with server_bus.rpc_server(Target(topic=topic, server="s1"),
                                         [Compute()]) as server:
            client = client_bus.rpc_client(Target(topic=topic), timeout=WAIT,
                                           allowed_remote_exmods=[HERE])
            try:
                await client.call({}, "whoami")
            except Refused as exc:
                assert "whoami was not stamped" in str(exc)
            else:
                raise AssertionError("the call was not refused")
        assert server.rejections.counts == {"Refused": 1}

    async def test_a_rejected_cast_is_counted_and_not_run(self, make_bus: Any,
                                                          topic: str) -> None:
        recorder, gate = Recorder(), Gate()
        server_bus = await make_bus(middleware=[gate])
        plain, stamped = await make_bus(), await make_bus(middleware=[Stamp()])
        async with server_bus.rpc_server(Target(topic=topic, server="s1"),
                                         [Compute("s1", recorder)]) as server:
            await plain.rpc_client(Target(topic=topic)).cast({}, "record", value=1)
            await stamped.rpc_client(Target(topic=topic)).cast({}, "record", value=2)
            await plain.rpc_client(Target(topic=topic)).cast({}, "record", value=3)
            assert await recorder.wait_for(1) == [("s1", 2)]
            assert await gate.refused.wait_for(2) == ["record", "record"]
        assert recorder.items == [("s1", 2)]
        assert server.rejections.counts == {"Refused": 2}

    async def test_a_rejected_notification_is_acknowledged_once(self, make_bus: Any,
                                                                topic: str) -> None:
        gate = Gate()
        listening = await make_bus(middleware=[gate])
        notifier = (await make_bus(middleware=[Stamp()])).notifier("p", topics=[topic])
        recorder = Recorder()
        first = listening.notification_listener([Target(topic=topic)],
                                                [Listener(recorder)], pool=f"{topic}_pool")
        async with first:
            await notifier.info({}, "spam", {"n": 1})
            await notifier.info({}, "ham", {"n": 2})
            (got,) = await recorder.wait_for(1)
            assert await gate.refused.wait_for(1) == ["spam"]
        assert (got["event_type"], got["ctxt"]["stamped_by"], got["ctxt"]["gated"]) == \
            ("ham", "sender", True)
        assert first.rejections.counts == {"Refused": 1}
        # a listener taking over the pool gets what comes next, and no redelivered spam
        second = listening.notification_listener([Target(topic=topic)],
                                                 [Listener(recorder)], pool=f"{topic}_pool")
        async with second:
            await notifier.info({}, "ham", {"n": 3})
            await recorder.wait_for(2)
        assert [item["payload"] for item in recorder.items] == [{"n": 2}, {"n": 3}]
        assert second.rejections.counts == {} and gate.refused.items == ["spam"]
