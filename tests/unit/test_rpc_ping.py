"""The RPC ping (oslo_rpc_server_ping) on relaybus servers and the oslo.messaging drop-in:
one implementation, answered when enabled, as oslo's rpc_ping_enabled does."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import relaybus
from relaybus import Target
from relaybus.rpc import ExplicitRPCAccessPolicy
from relaybus.rpc.ping import PING_METHOD, PingEndpoint


class Compute:
    async def whoami(self, ctxt: Any) -> str:
        return "c1"


class OwnPing:
    def oslo_rpc_server_ping(self, ctxt: Any) -> str:
        return "mine"


async def _ping(bus: relaybus.Bus, topic: str, **client: Any) -> Any:
    return await bus.rpc_client(Target(topic=topic, **client), timeout=5).call({}, PING_METHOD)


async def test_a_server_answers_pong_when_its_ping_is_on(relaybus_bus: relaybus.Bus) -> None:
    async with relaybus_bus.rpc_server(Target(topic="on", server="s1"), [Compute()],
                                       ping=True):
        assert await _ping(relaybus_bus, "on") == "pong"
        assert await _ping(relaybus_bus, "on", server="s1") == "pong"
        # no namespace, version 1.x, as oslo's ping endpoint
        with pytest.raises(relaybus.UnsupportedVersion):
            await _ping(relaybus_bus, "on", version="2.0")


async def test_off_by_default(relaybus_bus: relaybus.Bus) -> None:
    async with relaybus_bus.rpc_server(Target(topic="off", server="s1"), [Compute()]):
        with pytest.raises(relaybus.NoSuchMethod):
            await _ping(relaybus_bus, "off")


async def test_explicit_policy_servers_answer_it_too(relaybus_bus: relaybus.Bus) -> None:
    async with relaybus_bus.rpc_server(Target(topic="x", server="s1"), [Compute()], ping=True,
                                       access_policy=ExplicitRPCAccessPolicy()):
        assert await _ping(relaybus_bus, "x") == "pong"


async def test_an_endpoint_declaring_it_keeps_it_with_a_warning(
        relaybus_bus: relaybus.Bus, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="relaybus.rpc.ping"):
        server = relaybus_bus.rpc_server(Target(topic="own", server="s1"), [OwnPing()],
                                         ping=True)
    assert "reserved for the RPC ping" in caplog.text and "not adding" in caplog.text
    async with server:
        assert await _ping(relaybus_bus, "own") == "mine"


def test_the_drop_in_uses_the_same_endpoint() -> None:
    from relaybus.oslo_messaging.rpc import dispatcher

    assert dispatcher.PingEndpoint is PingEndpoint and dispatcher.PING_METHOD == PING_METHOD
    with_ping = dispatcher.RPCDispatcher([Compute()], ping=True)
    assert isinstance(with_ping.endpoints[-1], PingEndpoint)
    # handed to relaybus's server as it is, not wrapped for oslo's thread executor
    assert with_ping.relaybus_endpoints()[-1] is with_ping.endpoints[-1]
    assert not any(isinstance(e, PingEndpoint)
                   for e in dispatcher.RPCDispatcher([Compute()]).endpoints)


def test_a_server_names_its_ping_endpoint_and_the_drop_ins() -> None:
    from relaybus.rpc.ping import with_ping

    added = with_ping([Compute()], True, "s1")
    assert isinstance(added[-1], PingEndpoint) and added[-1].server == "s1"
    unnamed = PingEndpoint()  # as the drop-in's dispatcher lists it
    named = with_ping([Compute(), unnamed], False, "s2")
    assert named[-1] is not unnamed and named[-1].server == "s2"
    assert with_ping([unnamed], False)[0] is unnamed


async def test_ping_names_the_server_only_when_asked(relaybus_bus: relaybus.Bus) -> None:
    async with relaybus_bus.rpc_server(Target(topic="named", server="s1"), [Compute()],
                                       ping=True):
        assert await _ping(relaybus_bus, "named") == "pong"
        answer = await relaybus_bus.rpc_client(Target(topic="named"), timeout=5).call(
            {}, PING_METHOD, relaybus_identify=True)
        assert answer["reply"] == "pong" and answer["server"] == "s1"
        assert isinstance(answer["pid"], int) and answer["host"]


@pytest.mark.parametrize(("window", "limit"), [(0, 1), (-1, 1), (61, 1), (True, 1),
                                               ("1", 1), (1, 0), (1, 100_001), (1, 1.5)])
def test_ping_all_bounds_its_window_and_limit(window: Any, limit: Any) -> None:
    from relaybus.rpc.ping import check_window

    with pytest.raises(ValueError):
        check_window(window, limit)


async def test_ping_all_counts_answers_not_old_oslo_closing_messages() -> None:
    from relaybus.message import Reply, Request
    from relaybus.rpc.ping import IDENTIFY, ping_all
    from relaybus.transport.replies import Answer

    class Gathered:
        """A driver whose gathering returns what an old oslo server and others sent."""

        def __init__(self) -> None:
            self.sent: list[tuple[Target, Request]] = []

        async def gather(self, target: Target, request: Request, *, window: float,
                         limit: int) -> list[Answer]:
            self.sent.append((target, request))
            return [Answer(Reply("m", "pong", ending=False), 0.001),
                    Answer(Reply("m", None, ending=True), 0.002),  # its closing message
                    Answer(Reply("m", {"reply": "pong", "server": "s", "host": "h",
                                       "pid": 7}, ending=True), 0.003),
                    Answer(Reply("m", "other", ending=True), 0.004)]

    driver = Gathered()
    pongs = await ping_all(driver, "t", window=0.5)  # type: ignore[arg-type]
    assert [(p.server, p.pid, p.ok) for p in pongs] == \
        [(None, None, True), ("s", 7, True), (None, None, False)]
    target, request = driver.sent[0]
    assert target.fanout and target.topic == "t"
    assert request.method == PING_METHOD and request.args == {IDENTIFY: True}
    assert request.version == "1.0" and request.namespace is None
