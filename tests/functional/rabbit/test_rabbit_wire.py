"""relaybus on RabbitMQ against the oslo.messaging vectors, message by message.

Each request vector is replayed through a relaybus client; an independent AMQP peer (the
tap, on aiormq) plays the oslo server, records exactly what arrived, and answers with the
vector's captured reply. Each reply vector is produced by a relaybus server answering the
captured request bytes. Notifications go both ways too. Bodies are compared after dropping
the members the vector marks as varying (ids, timestamps, tracebacks); properties,
exchanges and routing keys are compared as they are (with the test's own topic).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import wirecap_exceptions
from rabbit_support import (
    HEX32,
    VECTOR_NOTIFICATION_TOPIC,
    VECTOR_TOPIC,
    WAIT,
    Tap,
    envelope,
    message_of,
    parse_body,
    properties_of,
    stable_body,
    vector,
)

import relaybus
from relaybus import Target

pytestmark = pytest.mark.broker

REQUESTS = [
    "rpc_call_request", "rpc_call_server_request", "rpc_call_ns_version_request",
    "rpc_call_get_context_request", "rpc_call_request_requestcontext",
    "rpc_call_monitor_request", "rpc_error_request_builtin", "rpc_error_request_custom",
    "rpc_error_request_no_such_method", "rpc_error_request_unsupported_version",
    "rpc_cast_request", "rpc_fanout_cast_request",
]
REPLY_OF = {
    "rpc_call_request": "rpc_call_reply", "rpc_call_server_request": "rpc_call_server_reply",
    "rpc_call_ns_version_request": "rpc_call_ns_version_reply",
    "rpc_call_get_context_request": "rpc_call_get_context_reply",
    "rpc_call_monitor_request": "rpc_call_monitor_reply",
    "rpc_error_request_builtin": "rpc_error_reply_builtin",
    "rpc_error_request_custom": "rpc_error_reply_custom",
    "rpc_error_request_no_such_method": "rpc_error_reply_no_such_method",
    "rpc_error_request_unsupported_version": "rpc_error_reply_unsupported_version",
}


def _route(vec: dict[str, Any], topic: str) -> tuple[str, str]:
    """The vector's exchange and routing key, with the test's topic in place of the capture's."""
    return (vec["exchange"].replace(VECTOR_TOPIC, topic),
            vec["routing_key"].replace(VECTOR_TOPIC, topic))


def _context(message: dict[str, Any]) -> dict[str, Any]:
    return {k[len("_context_"):]: v for k, v in message.items() if k.startswith("_context_")}


async def _serve_as_oslo(tap: Tap, vec: dict[str, Any], topic: str) -> str:
    """Declare what an oslo server of the capture would, for this vector; return the queue."""
    exchange, key = _route(vec, topic)
    if vec["exchange"].endswith("_fanout"):
        await tap.exchange(exchange, "fanout", auto_delete=True)
        return await tap.queue(f"{topic}_fanout_{'0' * 32}", (exchange, topic),
                               arguments={"x-expires": 1800000})
    await tap.exchange(exchange)
    return await tap.queue(key, (exchange, key))


async def _send_like_the_vector(bus: relaybus.Bus, vec: dict[str, Any], topic: str) -> Any:
    """Make relaybus send the request the vector shows; return what the client got."""
    message = message_of(vec["body_parsed"])
    _, key = _route(vec, topic)
    fields: dict[str, Any] = {"topic": topic}
    if key.startswith(f"{topic}."):
        fields["server"] = key[len(topic) + 1:]
    if vec["exchange"].endswith("_fanout"):
        fields["fanout"] = True
    for name in ("namespace", "version"):
        if name in message:
            fields[name] = message[name]
    expiration = vec["properties"].get("expiration")
    client = bus.rpc_client(Target(**fields),
                            timeout=int(expiration) / 1000 if expiration else None,
                            call_monitor_timeout=message.get("_timeout"),
                            allowed_remote_exmods=["wirecap_exceptions"])
    if "_msg_id" in message:
        try:
            return await client.call(_context(message), message["method"], **message["args"])
        except Exception as exc:  # noqa: BLE001 - the test looks at what was raised
            return exc
    return await client.cast(_context(message), message["method"], **message["args"])


def _check_client_outcome(outcome: Any, reply: dict[str, Any]) -> None:
    observed = reply.get("client_observed", {})
    if "returned" in observed:
        assert outcome == observed["returned"]
        return
    failure = message_of(reply["body_parsed"])["failure"]
    expected: dict[str, type[BaseException]] = {
        "ValueError": ValueError, "WidgetNotFound": wirecap_exceptions.WidgetNotFound,
        "NoSuchMethod": relaybus.NoSuchMethod, "UnsupportedVersion": relaybus.UnsupportedVersion,
    }
    assert isinstance(outcome, expected[failure["class"]]), outcome
    assert str(outcome).startswith(failure["message"])
    if failure["class"] == "WidgetNotFound":
        assert outcome.kwargs == observed["kwargs"]


@pytest.mark.parametrize("name", REQUESTS)
async def test_relaybus_requests_match_the_vectors(name: str, bus: relaybus.Bus, tap: Tap,
                                                   topic: str) -> None:
    vec = vector(name)
    queue = await _serve_as_oslo(tap, vec, topic)
    sending = asyncio.ensure_future(_send_like_the_vector(bus, vec, topic))
    request = await tap.get(queue)

    parsed = parse_body(request.body)
    assert stable_body(parsed, vec) == stable_body(vec["body_parsed"], vec)
    assert properties_of(request) == vec["properties"]
    assert (request.delivery.exchange, request.delivery.routing_key) == _route(vec, topic)
    message = message_of(parsed)
    assert HEX32.match(message["_unique_id"])
    if "_msg_id" not in message:
        assert await sending is None
        return
    assert HEX32.match(message["_msg_id"]) and message["_reply_q"].startswith("reply_")
    reply_name = REPLY_OF.get(name, "rpc_call_reply")
    answers = [reply_name] if name != "rpc_call_monitor_request" else \
        ["rpc_call_monitor_heartbeat", "rpc_call_monitor_heartbeat", reply_name]
    for answer in answers:  # answer with the captured reply bytes, under this call's id
        captured = message_of(vector(answer)["body_parsed"])
        body = dict(captured, _msg_id=message["_msg_id"])
        if isinstance(body["failure"], dict):
            body["failure"] = json.dumps(body["failure"])
        await tap.publish("", message["_reply_q"], envelope(body))
    _check_client_outcome(await asyncio.wait_for(sending, WAIT), vector(reply_name))


class Captured:
    """The endpoints of the capture (capture_vectors.py), as relaybus endpoints."""

    def __init__(self) -> None:
        self.casts: list[dict[str, Any]] = []

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def get_context(self, ctxt: Any) -> Any:
        return ctxt

    def fail_builtin(self, ctxt: Any, message: str) -> None:
        raise ValueError(message)

    def fail_custom(self, ctxt: Any, widget_id: str) -> None:
        raise wirecap_exceptions.WidgetNotFound(widget_id=widget_id)

    def record_cast(self, ctxt: Any, **kwargs: Any) -> None:
        self.casts.append({"ctxt": ctxt, "kwargs": kwargs})

    async def slow(self, ctxt: Any, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"done after {seconds} s"


class CapturedNs:
    target = Target(namespace="wirecap_ns", version="1.3")

    def ns_echo(self, ctxt: Any, value: Any) -> Any:
        return {"namespace": "wirecap_ns", "version": "1.3", "value": value}


@pytest.mark.parametrize("request_name", sorted(REPLY_OF))
async def test_relaybus_replies_match_the_vectors(request_name: str, bus: relaybus.Bus,
                                                  tap: Tap, topic: str) -> None:
    request = vector(request_name)
    reply = vector(REPLY_OF[request_name])
    reply_q = await tap.queue(f"reply_{uuid.uuid4().hex}")
    async with bus.rpc_server(Target(topic=topic, server="server1"),
                              [Captured(), CapturedNs()]):
        message = dict(message_of(request["body_parsed"]), _reply_q=reply_q,
                       _msg_id="a" * 32, _unique_id="b" * 32)
        exchange, key = _route(request, topic)
        await tap.publish(exchange, key, envelope(message),
                          expiration=request["properties"].get("expiration"))
        if request_name == "rpc_call_monitor_request":
            heartbeat = vector("rpc_call_monitor_heartbeat")
            got = await tap.get(reply_q)
            assert stable_body(parse_body(got.body), heartbeat) == \
                stable_body(heartbeat["body_parsed"], heartbeat)
        got = await tap.get(reply_q)
        while message_of(parse_body(got.body))["ending"] is False:  # more heartbeats
            got = await tap.get(reply_q)
    parsed = parse_body(got.body)
    assert stable_body(parsed, reply) == stable_body(reply["body_parsed"], reply)
    assert message_of(parsed)["_msg_id"] == "a" * 32
    assert HEX32.match(message_of(parsed)["_unique_id"])
    assert properties_of(got) == reply["properties"]
    assert (got.delivery.exchange, got.delivery.routing_key) == ("", reply_q)
    if isinstance(message_of(parsed)["failure"], dict):
        assert any("Traceback" in line for line in message_of(parsed)["failure"]["tb"])


async def test_captured_cast_reaches_a_relaybus_server(bus: relaybus.Bus, tap: Tap,
                                                       topic: str) -> None:
    vec = vector("rpc_cast_request")
    served = asyncio.Event()

    class Announcing(Captured):  # remote callers reach methods of the class only
        def record_cast(self, ctxt: Any, **kwargs: Any) -> None:
            super().record_cast(ctxt, **kwargs)
            served.set()

    endpoint = Announcing()
    async with bus.rpc_server(Target(topic=topic, server="server1"), [endpoint]):
        await tap.publish("openstack", topic, vec["body"].encode())
        await asyncio.wait_for(served.wait(), WAIT)
    (seen,) = endpoint.casts
    (expected,) = vec["server_observed"]
    assert seen["kwargs"] == expected["kwargs"]
    assert seen["ctxt"] == expected["ctxt"]  # client_timeout=None included, as under oslo


class NotificationRecorder:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.event = asyncio.Event()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, Any]) -> None:
        self.seen.append({"ctxt": ctxt, "publisher_id": publisher_id, "event_type": event_type,
                          "payload": payload, "metadata": metadata})
        self.event.set()

    error = info


@pytest.mark.parametrize("name", ["notification_info", "notification_error"])
async def test_relaybus_notifications_match_the_vectors(name: str, bus: relaybus.Bus,
                                                        tap: Tap, topic: str) -> None:
    vec = vector(name)
    message = message_of(vec["body_parsed"])
    priority = message["priority"].lower()
    key = vec["routing_key"].replace(VECTOR_NOTIFICATION_TOPIC, topic)
    await tap.exchange("openstack")
    recorded = await tap.queue(f"{key}.tap", ("openstack", key))
    tap.forget_later(key)  # the notifier declares <topic>.<priority>, as oslo's does
    notifier = bus.notifier(message["publisher_id"], topics=[topic])
    await getattr(notifier, priority)(_context(message), message["event_type"],
                                      message["payload"])
    got = await tap.get(recorded)
    parsed = parse_body(got.body)
    assert stable_body(parsed, vec) == stable_body(vec["body_parsed"], vec)
    assert properties_of(got) == vec["properties"]
    assert (got.delivery.exchange, got.delivery.routing_key) == (vec["exchange"], key)
    sent = message_of(parsed)
    assert HEX32.match(sent["_unique_id"]) and len(sent["message_id"]) == 36
    assert (await tap.queue_info(key))[0] == 1  # it also waits in the default pool's queue


@pytest.mark.parametrize("name", ["notification_pool", "notification_info_v1"])
async def test_captured_notifications_reach_a_relaybus_listener(name: str, bus: relaybus.Bus,
                                                                tap: Tap, topic: str) -> None:
    vec = vector(name)
    recorder = NotificationRecorder()
    pool = f"{topic}-pool"
    tap.forget_later(pool)
    async with bus.notification_listener([Target(topic=topic)], [recorder], pool=pool):
        key = vec["routing_key"].replace(VECTOR_NOTIFICATION_TOPIC, topic)
        await tap.publish(vec["exchange"], key, vec["body"].encode())
        await asyncio.wait_for(recorder.event.wait(), WAIT)
    (seen,) = recorder.seen
    message = message_of(vec["body_parsed"])
    expected = vec.get("listener_observed", [None])[0] or {
        "ctxt": {**_context(message), "client_timeout": None},
        "publisher_id": message["publisher_id"],
        "event_type": message["event_type"], "payload": message["payload"],
        "metadata": {"message_id": message["message_id"], "timestamp": message["timestamp"]}}
    assert seen == expected  # the context holds client_timeout=None, as oslo's listener's
