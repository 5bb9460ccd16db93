"""JSON Schemas of what relaybus puts on the wire, for the AsyncAPI document.

Each body is an envelope, ``{"oslo.version": "2.0", "oslo.message": "<JSON text>"}``,
whose ``oslo.message`` holds the JSON text of a request, a reply or a notification
(docs/protocol/README.md). The envelope is what a message's payload is; its
``oslo.message`` says, with ``contentMediaType`` and ``contentSchema``, which schema the
decoded text follows. A reply's ``failure`` member is JSON text too, of :data:`FAILURE`.

The generic parts agree with docs/protocol/schemas/*.json (tests/unit/test_asyncapi.py
compares them); the per-method and per-event parts are typed from the service.
"""

from __future__ import annotations

from typing import Any

_STRING: dict[str, Any] = {"type": "string"}
_ID: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_VERSION: dict[str, Any] = {"type": "string", "pattern": r"^\d+\.\d+(\.\d+)?$"}
CONTEXT: dict[str, Any] = {
    "^_context_": {"description": "one entry of the request context, flattened: "
                                  "_context_<key>"}}

#: docs/protocol/schemas/failure.json, without its $schema and $id
FAILURE: dict[str, Any] = {
    "title": "Failure",
    "description": "The exception an endpoint raised, as encoded (as JSON text) in a reply's "
                   "failure member. A sender must send class, module and message (relaybus "
                   "and oslo.messaging always send all six members); a receiver never "
                   "rejects a failure: see receiving.md.",
    "type": "object",
    "required": ["class", "module", "message"],
    "properties": {
        "class": {"type": "string",
                  "description": "exception class name, e.g. ValueError, NoSuchMethod"},
        "module": {"type": "string",
                   "description": "module of the class: 'builtins' for built-in exceptions, "
                                  "'oslo_messaging.rpc.dispatcher' for NoSuchMethod and "
                                  "UnsupportedVersion, 'relaybus.errors' for "
                                  "InvalidArguments"},
        "message": {"type": "string"},
        "tb": {"type": "array", "items": {"type": "string"},
               "description": "traceback lines, informational"},
        "args": {"type": "array",
                 "description": "positional constructor arguments, usually [message]. "
                                "Missing, empty ([]) or not a list: the receiver rebuilds "
                                "the exception with [message], so the message is never "
                                "lost"},
        "kwargs": {"type": "object",
                   "description": "keyword constructor arguments, usually {}. If the class "
                                  "does not accept them, the receiver raises RemoteError "
                                  "(class, module, message and traceback kept) instead of "
                                  "the class"},
    },
}


def envelope(content_ref: str, what: str) -> dict[str, Any]:
    """The body on the wire: the envelope around the JSON text of ``content_ref``."""
    return {
        "type": "object",
        "description": f"The body of the message: UTF-8 JSON text of this object, whose "
                       f"'oslo.message' is the JSON text of the {what} (so the message is "
                       f"encoded twice).",
        "required": ["oslo.version", "oslo.message"],
        "properties": {
            "oslo.version": {"type": "string", "enum": ["2.0", "2.0.0"],
                             "description": 'senders write "2.0"'},
            "oslo.message": {"type": "string", "contentMediaType": "application/json",
                             "contentSchema": {"$ref": content_ref},
                             "description": f"JSON text of the {what}"},
        },
        "additionalProperties": False,
    }


def request(method: str, namespace: str | None, version: str,
            args: dict[str, Any]) -> dict[str, Any]:
    """A decoded request for ``method`` (docs/protocol/schemas/request.json, typed)."""
    namespace_schema: dict[str, Any] = (
        {"const": namespace, "description": "the endpoint's namespace"}
        if namespace is not None else
        {"type": "null", "description": "the default namespace: absent or null"})
    return {
        "type": "object",
        "description": "A call (has _msg_id and _reply_q, usually _timeout) or a cast (none "
                       "of them). Unknown top-level members are ignored by receivers.",
        "required": ["method", "_unique_id"] + (["namespace"] if namespace else []),
        "properties": {
            "method": {"const": method},
            "args": {**args, "description": "keyword arguments; missing means {}"},
            "namespace": namespace_schema,
            "version": {**_VERSION,
                        "description": f"the lowest interface version the caller needs; "
                                       f"absent means 1.0. The endpoint serves {version} "
                                       f"(same major, minor up to it)."},
            "_msg_id": {**_ID, "description": "calls only: correlation id, echoed in every "
                                              "reply"},
            "_reply_q": {**_STRING, "description": "calls only: the caller's reply queue "
                                                   "(on NATS, its reply subject)"},
            "_timeout": {"type": ["number", "null"],
                         "description": "calls only, optional (older oslo clients omit it): "
                                        "call-monitor timeout T in seconds; when T >= 2 the "
                                        "server sends a heartbeat every T/2 s while the "
                                        "method runs"},
            "_unique_id": {**_ID, "description": "fresh per message; a server drops a "
                                                 "request whose _unique_id it just saw"},
        },
        "patternProperties": CONTEXT,
        "dependencies": {"_msg_id": ["_reply_q"], "_reply_q": ["_msg_id"]},
    }


def reply(result: dict[str, Any], failure_ref: str) -> dict[str, Any]:
    """A decoded reply whose result is ``result`` (docs/protocol/schemas/reply.json)."""
    return {
        "type": "object",
        "description": "Sent to the caller's reply queue: zero or more heartbeats (result "
                       "null, failure null, ending false), then one final reply (ending "
                       "true) with the result, or the failure.",
        "required": ["result", "failure", "ending", "_msg_id"],
        "properties": {
            "result": result,
            "failure": {"type": ["string", "null"], "contentMediaType": "application/json",
                        "contentSchema": {"$ref": failure_ref},
                        "description": "null, or the JSON text of the failure when the "
                                       "method raised"},
            "ending": {"type": "boolean",
                       "description": "true on the final reply, false on a heartbeat"},
            "_msg_id": {**_ID, "description": "the request's _msg_id"},
            "_unique_id": _ID,
        },
    }


def failed_reply(failure_ref: str) -> dict[str, Any]:
    """The final reply of a call whose method raised."""
    return {
        "type": "object",
        "description": "The final reply of a call whose method raised: no result, the "
                       "failure as JSON text.",
        "required": ["result", "failure", "ending", "_msg_id"],
        "properties": {
            "result": {"type": "null"},
            "failure": {"type": "string", "contentMediaType": "application/json",
                        "contentSchema": {"$ref": failure_ref}},
            "ending": {"const": True},
            "_msg_id": _ID,
            "_unique_id": _ID,
        },
    }


def notification(event_type: str, priority: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A decoded notification (docs/protocol/schemas/notification.json, typed)."""
    return {
        "type": "object",
        "required": ["message_id", "publisher_id", "event_type", "priority", "payload",
                     "timestamp"],
        "properties": {
            "message_id": {"type": "string", "format": "uuid",
                           "description": "the same on every redelivery of this "
                                          "notification"},
            "publisher_id": {"type": ["string", "null"]},
            "event_type": {"const": event_type},
            "priority": {"const": priority.upper()},
            "payload": payload,
            "timestamp": {"type": "string",
                          "description": "UTC, 'YYYY-MM-DD HH:MM:SS[.ffffff]'"},
            "_unique_id": _ID,
        },
        "patternProperties": CONTEXT,
    }
