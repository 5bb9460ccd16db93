"""Regenerate the relaybus test vectors: real messages relaybus produced on memory://.

Run from the repository root: ``python tests/vectors/relaybus/make_vectors.py``. Each file
holds the body as sent (file paths in tracebacks shown as ``<repo>``), its decoded form
(``oslo.message`` and a reply's ``failure`` decoded too), and ``variable_members``: JSON
pointers, into the decoded ``oslo.message``, of the members that change on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import relaybus
from relaybus import Target
from relaybus.drivers.memory.broker import broker_named
from relaybus.message import decode_json

HERE = Path(__file__).resolve().parent
REPO = str(HERE.parents[2])


class Endpoint:
    target = Target(namespace="vectors", version="1.2")

    async def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    async def fail(self, ctxt: Any, message: str) -> None:
        raise ValueError(message)


def _decoded(body: bytes) -> Any:
    outer = decode_json(body)
    inner = decode_json(outer["oslo.message"])
    if isinstance(inner.get("failure"), str):
        inner["failure"] = decode_json(inner["failure"])
    return {"oslo.version": outer["oslo.version"], "oslo.message": inner}


async def capture() -> dict[str, dict[str, Any]]:
    captured: list[tuple[str, str, bytes]] = []
    broker = broker_named("vectors")
    original = broker.publish

    def recording_publish(exchange: str, routing_key: str, body: bytes) -> int:
        captured.append((exchange, routing_key, body))
        return original(exchange, routing_key, body)

    broker.publish = recording_publish  # type: ignore[method-assign]
    async with await relaybus.connect("memory://vectors") as bus:
        async with bus.rpc_server(Target(topic="vectors", server="server1"), [Endpoint()]):
            client = bus.rpc_client(Target(topic="vectors", namespace="vectors",
                                           version="1.1"), timeout=10)
            ctxt = {"user_id": "u1", "project_id": "p1", "request_id": "req-1"}
            await client.call(ctxt, "echo", value={"text": "héllo ✓", "n": 42, "f": 2.5,
                                                   "items": [1, None, True]})
            await client.cast(ctxt, "echo", value="cast")
            with contextlib.suppress(ValueError):
                await client.call(ctxt, "fail", message="bad value: 42")
        notifier = bus.notifier("compute.host1", topics=["notifications"])
        await notifier.info({"user_id": "u1", "auth_token": "secret"},
                            "compute.instance.create.end", {"instance_id": 52})
    names = ["call_request", "call_reply", "cast_request", "failure_request",
             "failure_reply", "notification"]
    variable = {
        "call_request": ["/_msg_id", "/_reply_q", "/_unique_id"],
        "call_reply": ["/_msg_id", "/_unique_id"],
        "cast_request": ["/_unique_id"],
        "failure_request": ["/_msg_id", "/_reply_q", "/_unique_id"],
        "failure_reply": ["/_msg_id", "/_unique_id", "/failure/tb"],
        "notification": ["/message_id", "/timestamp", "/_unique_id"],
    }
    vectors = {}
    for name, (exchange, routing_key, body) in zip(names, captured, strict=True):
        vectors[name] = {
            "exchange": exchange,
            "routing_key": "<reply queue>" if routing_key.startswith("reply_") else routing_key,
            "body": body.decode("utf-8").replace(REPO, "<repo>"),
            "decoded": json.loads(json.dumps(_decoded(body)).replace(REPO, "<repo>")),
            "variable_members": variable[name],
        }
    return vectors


def cloudevent_of(notification: dict[str, Any], exchange: str, bustopic: str) -> dict[str, Any]:
    """The CloudEvent the firehose makes of a decoded notification (default topic template)."""
    from relaybus.gateway.events import cloudevent
    from relaybus.gateway.topics import TopicTemplate

    priority = notification["priority"].lower()
    topic = TopicTemplate().render(exchange=exchange, bustopic=bustopic,
                                   publisher_id=notification["publisher_id"],
                                   event_type=notification["event_type"], priority=priority)
    return cloudevent(message_id=notification["message_id"],
                      publisher_id=notification["publisher_id"],
                      event_type=notification["event_type"], priority=priority,
                      timestamp=notification["timestamp"], payload=notification["payload"],
                      exchange=exchange, bustopic=bustopic, topic=topic)


def main() -> None:
    vectors = asyncio.run(capture())
    note = vectors["notification"]
    vectors["cloudevent"] = {
        "made_from": "notification.json",
        "event": cloudevent_of(note["decoded"]["oslo.message"], note["exchange"],
                               note["routing_key"].rsplit(".", 1)[0]),
        "variable_members": [],
    }
    for name, vector in vectors.items():
        (HERE / f"{name}.json").write_text(json.dumps(vector, indent=2, ensure_ascii=False)
                                           + "\n")
        print("wrote", name)


if __name__ == "__main__":
    main()
