"""An AsyncAPI 3.0 document for a service: its queues, methods, replies and events.

Channels follow the topology every relaybus transport uses (see docs/protocol): requests
to ``<topic>`` (any server, round-robin), ``<topic>.<server>`` (one server) and
``<topic>_fanout`` (every server), replies to the caller's reply queue, notifications to
``<notification topic>.<priority>``. Message payloads describe the decoded message object
(inside the ``oslo.version`` 2.0 envelope), with the arguments, results and event payloads
typed from the endpoints' type hints.
"""

from __future__ import annotations

import re
from typing import Any

from relaybus.contracts.schema import SchemaSet, arguments_schema, endpoint_methods, resolve
from relaybus.contracts.service import Service
from relaybus.message import PRIORITIES
from relaybus.rpc.dispatcher import DEFAULT_VERSION
from relaybus.target import parse_version


def _key(*parts: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "_", "_".join(p for p in parts if p))


def _ref(section: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{section}/{name}"}


def _channel_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/channels/{name}"}


_STRING = {"type": "string"}
_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_CONTEXT = {"^_context_": {"description": "one request-context entry, flattened"}}


def _request_payload(method: str, namespace: str | None, version: str,
                     args: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "method": {"const": method},
        "args": args,
        "version": {"type": "string", "pattern": r"^\d+\.\d+(\.\d+)?$",
                    "description": f"the lowest version the caller needs; the endpoint "
                                   f"serves {version} (same major, minor up to it)"},
        "_msg_id": {**_ID, "description": "calls only: correlates the reply"},
        "_reply_q": {**_STRING, "description": "calls only: the caller's reply queue"},
        "_timeout": {"type": ["number", "null"],
                     "description": "calls only: call-monitor heartbeat timeout, seconds"},
        "_unique_id": {**_ID, "description": "fresh per message; repeats are dropped"},
    }
    if namespace is not None:
        properties["namespace"] = {"const": namespace}
    return {"type": "object", "required": ["method", "args", "_unique_id"],
            "properties": properties, "patternProperties": _CONTEXT}


def _reply_payload(result: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["result", "failure", "ending", "_msg_id"],
            "properties": {
                "result": result,
                "failure": {"type": ["string", "null"],
                            "description": "JSON text of the failure object when the method "
                                           "raised (see the failure message)"},
                "ending": {"type": "boolean",
                           "description": "true on the final reply, false on a heartbeat"},
                "_msg_id": _ID, "_unique_id": _ID}}


_FAILURE_PAYLOAD = {
    "type": "object", "required": ["class", "module", "message", "tb", "args", "kwargs"],
    "description": "The object encoded as JSON text in a reply's failure member.",
    "properties": {
        "class": {**_STRING, "description": "exception class name, e.g. ValueError"},
        "module": {**_STRING, "description": "its module, e.g. builtins"},
        "message": _STRING,
        "tb": {"type": "array", "items": _STRING},
        "args": {"type": "array"},
        "kwargs": {"type": "object"},
    },
}


def _notification_payload(event_type: str, priority: str,
                          payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object",
            "required": ["message_id", "publisher_id", "event_type", "priority", "payload",
                         "timestamp"],
            "properties": {
                "message_id": {"type": "string", "format": "uuid"},
                "publisher_id": {"type": ["string", "null"]},
                "event_type": {"const": event_type},
                "priority": {"const": priority.upper()},
                "payload": payload,
                "timestamp": {"type": "string",
                              "description": "UTC, 'YYYY-MM-DD HH:MM:SS[.ffffff]'"},
                "_unique_id": _ID},
            "patternProperties": _CONTEXT}


def _highest(versions: list[str]) -> str:
    return max(versions, key=parse_version) if versions else DEFAULT_VERSION


def asyncapi_document(service: Service, *, control_exchange: str = "openstack",
                      server_url: str | None = None) -> dict[str, Any]:
    """Describe ``service`` as an AsyncAPI 3.0.0 document (a JSON-ready dict)."""
    notification_topic = service.notification_topic
    target = service.target
    topic = target.topic or ""
    exchange = target.exchange or control_exchange
    schemas = SchemaSet()
    methods = []
    for endpoint in service.endpoints:
        ep_target = getattr(endpoint, "target", None)
        namespace = getattr(ep_target, "namespace", None)
        version = getattr(ep_target, "version", None) or DEFAULT_VERSION
        for name, signature in endpoint_methods(endpoint):
            methods.append((namespace, version, name, signature,
                            arguments_schema(signature, schemas), schemas.add(signature.result)))
    events = [(event_type, priority, schemas.add(payload_type))
              for event_type, payload_type, priority in service.events()]

    messages: dict[str, Any] = {"failure": {
        "name": "failure", "title": "Failure", "contentType": "application/json",
        "summary": "What a reply's failure member holds when the method raised.",
        "payload": _FAILURE_PAYLOAD}}
    operations: dict[str, Any] = {}
    request_refs, reply_refs = {}, {"failure": _ref("messages", "failure")}
    for namespace, version, name, signature, args, result in methods:
        key = _key(namespace or "default", name)
        messages[f"{key}_request"] = {
            "name": f"{key}_request", "title": f"{name} request",
            "contentType": "application/json",
            "summary": (signature.doc.splitlines() or [f"Invoke {name}"])[0],
            "description": signature.doc or None,
            "payload": _request_payload(name, namespace, version, resolve(args, schemas)),
        }
        messages[f"{key}_reply"] = {
            "name": f"{key}_reply", "title": f"{name} reply", "contentType": "application/json",
            "payload": _reply_payload(schemas.schema(result))}
        request_refs[f"{key}_request"] = _ref("messages", f"{key}_request")
        reply_refs[f"{key}_reply"] = _ref("messages", f"{key}_reply")
        operations[key] = {
            "action": "receive", "channel": _channel_ref("requests"),
            "title": name, "summary": (signature.doc.splitlines() or [name])[0],
            "description": signature.doc or None,
            "messages": [{"$ref": f"#/channels/requests/messages/{key}_request"}],
            "reply": {"channel": _channel_ref("replies"),
                      "messages": [{"$ref": f"#/channels/replies/messages/{key}_reply"},
                                   {"$ref": "#/channels/replies/messages/failure"}]},
            "x-relaybus-namespace": namespace, "x-relaybus-version": version,
        }
    event_refs = {}
    for event_type, priority, handle in events:
        key = _key("event", event_type)
        messages[key] = {"name": event_type, "title": event_type,
                         "contentType": "application/json",
                         "summary": f"{priority.upper()} notification {event_type}",
                         "payload": _notification_payload(event_type, priority,
                                                          schemas.schema(handle))}
        event_refs[key] = _ref("messages", key)
        operations[_key("emit", event_type)] = {
            "action": "send", "channel": _channel_ref("notifications"),
            "summary": f"{service.name} emits {event_type}",
            "messages": [{"$ref": f"#/channels/notifications/messages/{key}"}]}

    channels: dict[str, Any] = {} if not methods else {
        "requests": {"address": topic, "title": "Requests to any server",
                     "description": f"Exchange '{exchange}', routing key '{topic}': each "
                                    "request goes to one server of the topic, round-robin.",
                     "messages": request_refs},
        "direct_requests": {"address": f"{topic}.{{server}}", "title": "Requests to one server",
                            "description": f"Exchange '{exchange}', routing key "
                                           f"'{topic}.<server>'.",
                            "parameters": {"server": {"description": "the server's name"}},
                            "messages": request_refs},
        "fanout": {"address": f"{topic}_fanout", "title": "Casts to every server",
                   "description": f"Fanout exchange '{topic}_fanout': every server of the "
                                  "topic gets one copy; casts only.",
                   "messages": request_refs},
        "replies": {"address": "{reply_queue}", "title": "Replies",
                    "description": "The caller's reply queue (default exchange, routing key = "
                                   "the request's _reply_q): heartbeats, then one final reply.",
                    "parameters": {"reply_queue": {"description": "the request's _reply_q"}},
                    "messages": reply_refs},
    }
    if events:
        channels["notifications"] = {
            "address": f"{notification_topic}.{{priority}}", "title": "Notifications",
            "description": f"Exchange '{exchange}', routing key "
                           f"'{notification_topic}.<priority>'.",
            "parameters": {"priority": {"enum": list(PRIORITIES)}},
            "messages": event_refs}
    for operation in operations.values():
        for extension in ("x-relaybus-namespace", "description"):
            if operation.get(extension) is None:
                operation.pop(extension, None)
    for message in messages.values():
        if message.get("description") is None:
            message.pop("description", None)

    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {"title": service.name,
                 "version": _highest([m[1] for m in methods]),
                 "description": service.description or f"The {service.name} service."},
        "defaultContentType": "application/json",
    }
    if server_url:
        host, _, _ = server_url.partition("://")[2].rpartition("@")[2].partition("/")
        document["servers"] = {"bus": {"host": host or "localhost",
                                       "protocol": server_url.partition("://")[0]}}
    document.update({
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas.components},
        "x-relaybus": {"exchange": exchange, "topic": topic,
                       "envelope": "each body is {'oslo.version': '2.0', 'oslo.message': "
                                   "<the payload below, as JSON text>}"},
    })
    return document
