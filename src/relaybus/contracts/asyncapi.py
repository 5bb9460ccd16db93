"""An AsyncAPI document for a service: its servers, queues, methods, replies and events.

AsyncAPI 3.0.0 by default, 3.1.0 on request; ``@asyncapi/parser`` validates both
(tests/unit/test_asyncapi.py). Channels follow the topology of each network transport
(docs/protocol): on AMQP (RabbitMQ) requests go to routing key ``<topic>`` of the control
exchange (any server, round-robin), ``<topic>.<server>`` (one server) and the fanout exchange
``<topic>_fanout`` (every server); notifications to ``<notification topic>.<priority>``;
replies to the caller's reply queue through the default exchange. On NATS the same go to
``<prefix>.<exchange>.rpc.<topic>[.<server>]`` (queue group ``rpc``),
``<prefix>.<exchange>.fanout.<topic>`` and ``<prefix>.<exchange>.notify.<topic>.<priority>``.

A message's payload is what the wire carries: the ``oslo.message`` envelope, whose JSON text
is described by ``contentSchema`` (a request, reply or notification schema in
``components/schemas``, typed from the endpoints' type hints and the declared events). An
operation's reply says where it goes (``reply.address.location``: the request's
``_reply_q``) and that it is the method's reply or the failure message, whose failure text
follows docs/protocol/schemas/failure.json.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from relaybus.contracts import wire
from relaybus.contracts.examples import example
from relaybus.contracts.schema import SchemaSet, arguments_schema, endpoint_methods, resolve
from relaybus.contracts.service import Service
from relaybus.message import PRIORITIES
from relaybus.rpc.dispatcher import DEFAULT_VERSION
from relaybus.target import parse_version
from relaybus.url import parse_url

#: the AsyncAPI versions :func:`asyncapi_document` writes
VERSIONS = ("3.0.0", "3.1.0")
#: where the document's servers are when none are given
DEFAULT_SERVERS = ("rabbit://localhost:5672/", "nats://localhost:4222")
_AMQP_BINDING = "0.3.0"
_NATS_BINDING = "0.1.0"
_NATS_PREFIX = "relaybus"
_PROTOCOLS = {"rabbit": "amqp", "nats": "nats"}
_TRANSPORT_TITLES = {"amqp": "AMQP", "nats": "NATS"}
_NATS_ESCAPES = {"%": "%25", ".": "%2E", "*": "%2A", ">": "%3E"}
_FAILURE_SCHEMA = "relaybus.failure"
_FAILED_REPLY_SCHEMA = "relaybus.failed_reply"
REPLY_LOCATION = "$message.payload#/_reply_q"
_MSG_ID = "c0ffee" * 5 + "00"
_UNIQUE_ID = "5eed" * 8


def _wrapped(message: dict[str, Any]) -> dict[str, Any]:
    """A message object in its envelope, as the wire carries it."""
    return {"oslo.version": "2.0", "oslo.message": json.dumps(message)}


def _key(*parts: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "_", "_".join(p for p in parts if p))


def _schema_ref(name: str) -> str:
    return f"#/components/schemas/{name}"


def _ref(section: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{section}/{name}"}


def _channel_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/channels/{name}"}


def _token(name: str) -> str:
    """A name as one NATS subject token (relaybus.drivers.nats.naming's escaping)."""
    return re.sub(r"[%.*>]", lambda m: _NATS_ESCAPES[m.group(0)], name)


def _highest(versions: list[str]) -> str:
    return max(versions, key=parse_version) if versions else DEFAULT_VERSION


def _servers(urls: Sequence[str]) -> tuple[dict[str, Any], dict[str, list[str]], str]:
    """AsyncAPI servers of transport URLs, the server names per protocol, the AMQP vhost."""
    servers: dict[str, Any] = {}
    by_protocol: dict[str, list[str]] = {}
    vhost = "/"
    for url in urls:
        parsed = parse_url(url)
        protocol = _PROTOCOLS.get(parsed.scheme)
        if protocol is None:
            raise ValueError(f"no AsyncAPI protocol for {parsed.scheme}:// (rabbit:// or "
                             f"nats://)")
        if protocol == "amqp":
            vhost = parsed.virtual_host or "/"
        default_port = 5672 if protocol == "amqp" else 4222
        addresses = [(h.hostname or "localhost", h.port or default_port)
                     for h in parsed.hosts] or [("localhost", default_port)]
        for hostname, port in addresses:
            names = by_protocol.setdefault(protocol, [])
            name = "rabbitmq" if protocol == "amqp" else "nats"
            name = name if not names else f"{name}-{len(names) + 1}"
            names.append(name)
            path = f"/{parsed.virtual_host}" if protocol == "amqp" and parsed.virtual_host \
                else ""
            server: dict[str, Any] = {
                "host": f"{hostname}:{port}", "protocol": protocol,
                "title": f"{_TRANSPORT_TITLES[protocol]} broker",
                "description": f"relaybus transport URL {parsed.scheme}://{hostname}:{port}"
                               f"{path}"}
            if protocol == "amqp":
                server["protocolVersion"] = "0.9.1"
            servers[name] = server
    return servers, by_protocol, vhost


class _Builder:
    """Collects the parts of one document."""

    def __init__(self, service: Service, control_exchange: str) -> None:
        self.service = service
        self.topic = service.target.topic or ""
        self.exchange = service.target.exchange or control_exchange
        self.schemas = SchemaSet()
        self.messages: dict[str, Any] = {}
        self.wire_schemas: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.methods: list[tuple[Any, ...]] = []
        self.events: list[tuple[str, str, int]] = []
        for endpoint in service.endpoints:
            ep_target = getattr(endpoint, "target", None)
            namespace = getattr(ep_target, "namespace", None)
            version = getattr(ep_target, "version", None) or DEFAULT_VERSION
            for name, signature in endpoint_methods(endpoint):
                self.methods.append((namespace, version, name, signature,
                                     arguments_schema(signature, self.schemas),
                                     self.schemas.add(signature.result)))
        self.events = [(event_type, priority, self.schemas.add(payload_type))
                       for event_type, payload_type, priority in service.events()]

    # -- messages ---------------------------------------------------------------------

    def build_messages(self) -> None:
        amqp_message = {"amqp": {"contentEncoding": "utf-8", "bindingVersion": _AMQP_BINDING}}
        self.wire_schemas[_FAILURE_SCHEMA] = wire.FAILURE
        self.wire_schemas[_FAILED_REPLY_SCHEMA] = wire.failed_reply(
            _schema_ref(_FAILURE_SCHEMA))
        self.messages["failure"] = {
            "name": "failure", "title": "Failure", "contentType": "application/json",
            "summary": "The final reply of a call whose method raised.",
            "description": "Its failure member is the JSON text of a Failure object "
                           "(docs/protocol/schemas/failure.json): class, module and message "
                           "always; tb, args and kwargs as relaybus and oslo.messaging send "
                           "them.",
            "payload": wire.envelope(_schema_ref(_FAILED_REPLY_SCHEMA), "failed reply"),
            "bindings": amqp_message,
            "examples": [{"name": "key_error", "summary": "a method raised KeyError(52)",
                          "payload": _wrapped({
                              "result": None, "ending": True, "_msg_id": _MSG_ID,
                              "failure": json.dumps({
                                  "class": "KeyError", "module": "builtins", "message": "52",
                                  "tb": ["Traceback (most recent call last):\n", "..."],
                                  "args": [52], "kwargs": {}})})}]}
        for namespace, version, name, signature, args, result in self.methods:
            key = _key(namespace or "default", name)
            request = wire.request(name, namespace, version, resolve(args, self.schemas))
            self.wire_schemas[f"request.{key}"] = request
            self.wire_schemas[f"reply.{key}"] = wire.reply(self.schemas.schema(result),
                                                           _schema_ref(_FAILURE_SCHEMA))
            summary = (signature.doc.splitlines() or [f"Invoke {name}"])[0]
            self.messages[f"{key}_request"] = {
                "name": f"{key}_request", "title": f"{name} request",
                "contentType": "application/json", "summary": summary,
                "description": signature.doc or None,
                "payload": wire.envelope(_schema_ref(f"request.{key}"), f"{name} request"),
                "bindings": amqp_message,
                "examples": [{"name": f"call_{name}", "summary": f"a call of {name}",
                              "payload": self.request_example(key, version)}]}
            self.messages[f"{key}_reply"] = {
                "name": f"{key}_reply", "title": f"{name} reply",
                "contentType": "application/json",
                "summary": f"The result of {name} (or a heartbeat while it runs).",
                "payload": wire.envelope(_schema_ref(f"reply.{key}"), f"{name} reply"),
                "bindings": amqp_message,
                "examples": [{"name": f"{name}_result", "summary": "the final reply",
                              "payload": _wrapped({
                                  "result": example(self.schemas.schema(result),
                                                    self.schemas.components),
                                  "failure": None, "ending": True, "_msg_id": _MSG_ID})}]}
        for event_type, priority, handle in self.events:
            key = _key("event", event_type)
            self.wire_schemas[f"notification.{key}"] = wire.notification(
                event_type, priority, self.schemas.schema(handle))
            self.messages[key] = {
                "name": event_type, "title": event_type, "contentType": "application/json",
                "summary": f"{priority.upper()} notification {event_type}",
                "payload": wire.envelope(_schema_ref(f"notification.{key}"),
                                         f"{event_type} notification"),
                "bindings": amqp_message,
                "examples": [{"name": "notification", "summary": f"a {event_type}",
                              "payload": _wrapped({
                                  "message_id": "6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
                                  "publisher_id": f"{self.service.name}.host1",
                                  "event_type": event_type, "priority": priority.upper(),
                                  "payload": example(self.schemas.schema(handle),
                                                     self.schemas.components),
                                  "timestamp": "2026-01-01 12:00:00.000000",
                                  "_unique_id": _UNIQUE_ID,
                                  "_context_request_id": "req-1"})}]}
        for message in self.messages.values():
            if message.get("description") is None:
                message.pop("description", None)

    def request_example(self, key: str, version: str) -> dict[str, Any]:
        """An example request of method ``key`` as the wire carries it."""
        schema = self.wire_schemas[f"request.{key}"]
        components = self.schemas.components
        body = {"method": schema["properties"]["method"]["const"],
                "args": example(schema["properties"]["args"], components) or {}}
        namespace = schema["properties"]["namespace"].get("const")
        if namespace is not None:
            body["namespace"] = namespace
        body.update({"version": version, "_msg_id": _MSG_ID,
                     "_reply_q": "reply_" + "ab" * 16, "_timeout": None,
                     "_unique_id": _UNIQUE_ID, "_context_request_id": "req-1"})
        return _wrapped(body)

    # -- channels and operations ------------------------------------------------------

    def add_transport(self, protocol: str, servers: list[str], vhost: str) -> None:
        prefix = "" if protocol == "amqp" else "nats_"
        server_refs = [{"$ref": f"#/servers/{name}"} for name in servers]
        request_refs = {k: _ref("messages", k) for k in self.messages if k.endswith("_request")}
        reply_refs = {k: _ref("messages", k) for k in self.messages
                      if k.endswith("_reply") or k == "failure"}
        event_refs = {k: _ref("messages", k) for k in self.messages if k.startswith("event_")}
        title = _TRANSPORT_TITLES[protocol]
        if self.methods:
            self.channels.update({
                f"{prefix}requests": self._channel(
                    protocol, "requests", server_refs, vhost, request_refs,
                    f"{title}: requests to any server of the topic (round-robin)"),
                f"{prefix}direct_requests": self._channel(
                    protocol, "direct_requests", server_refs, vhost, request_refs,
                    f"{title}: requests to one named server"),
                f"{prefix}fanout": self._channel(
                    protocol, "fanout", server_refs, vhost, request_refs,
                    f"{title}: casts to every server of the topic"),
                f"{prefix}replies": self._channel(
                    protocol, "replies", server_refs, vhost, reply_refs,
                    f"{title}: replies, to the caller's reply "
                    + ("queue" if protocol == "amqp" else "subject")),
            })
            for namespace, version, name, signature, *_ in self.methods:
                key = _key(namespace or "default", name)
                operation: dict[str, Any] = {
                    "action": "receive", "channel": _channel_ref(f"{prefix}requests"),
                    "title": name, "summary": (signature.doc.splitlines() or [name])[0],
                    "description": signature.doc or None,
                    "messages": [{"$ref": f"#/channels/{prefix}requests/messages/"
                                          f"{key}_request"}],
                    "reply": {
                        "address": {"location": REPLY_LOCATION,
                                    "description": "the _reply_q of the request, inside the "
                                                   "JSON text of its oslo.message"},
                        "channel": _channel_ref(f"{prefix}replies"),
                        "messages": [
                            {"$ref": f"#/channels/{prefix}replies/messages/{key}_reply"},
                            {"$ref": f"#/channels/{prefix}replies/messages/failure"}]},
                    "bindings": self._operation_binding(protocol, "requests"),
                    "x-relaybus-namespace": namespace, "x-relaybus-version": version,
                }
                for optional in ("description", "x-relaybus-namespace"):
                    if operation[optional] is None:
                        del operation[optional]
                self.operations[f"{prefix}{key}"] = operation
        if self.events:
            self.channels[f"{prefix}notifications"] = self._channel(
                protocol, "notifications", server_refs, vhost, event_refs,
                f"{title}: notifications")
            for event_type, *_ in self.events:
                key = _key("event", event_type)
                self.operations[f"{prefix}{_key('emit', event_type)}"] = {
                    "action": "send", "channel": _channel_ref(f"{prefix}notifications"),
                    "summary": f"{self.service.name} emits {event_type}",
                    "messages": [{"$ref": f"#/channels/{prefix}notifications/messages/{key}"}],
                    "bindings": self._operation_binding(protocol, "notifications")}

    def _channel(self, protocol: str, kind: str, servers: list[dict[str, str]], vhost: str,
                 messages: dict[str, Any], title: str) -> dict[str, Any]:
        topic, exchange = self.topic, self.exchange
        ntopic = self.service.notification_topic
        channel: dict[str, Any] = {"title": title, "servers": servers, "messages": messages}
        if protocol == "amqp":
            where = {
                "requests": (topic, (f"Exchange '{exchange}', routing key '{topic}': each "
                                    "request goes to one server of the topic, round-robin.")),
                "direct_requests": (f"{topic}.{{server}}",
                                    f"Exchange '{exchange}', routing key '{topic}.<server>'."),
                "fanout": (f"{topic}_fanout", (f"Fanout exchange '{topic}_fanout': every "
                                              "server of the topic gets one copy; casts "
                                              "only.")),
                "replies": (None, ("The caller's reply queue (default exchange, routing key "
                                  "= the request's _reply_q): heartbeats, then one final "
                                  "reply.")),
                "notifications": (f"{ntopic}.{{priority}}",
                                  (f"Exchange '{exchange}', routing key "
                                  f"'{ntopic}.<priority>'.")),
            }[kind]
            exchange_binding = {
                "name": f"{topic}_fanout" if kind == "fanout" else exchange,
                "type": "fanout" if kind == "fanout" else "topic",
                "durable": False, "autoDelete": kind == "fanout", "vhost": vhost}
            channel["bindings"] = {"amqp": (
                {"is": "queue", "queue": {"durable": False, "exclusive": False,
                                          "autoDelete": False, "vhost": vhost},
                 "bindingVersion": _AMQP_BINDING}
                if kind == "replies" else
                {"is": "routingKey", "exchange": exchange_binding,
                 "bindingVersion": _AMQP_BINDING})}
        else:
            base = f"{_NATS_PREFIX}.{_token(exchange)}"
            where = {
                "requests": (f"{base}.rpc.{_token(topic)}",
                             ("Each request goes to one server of the topic (queue group "
                             "'rpc').")),
                "direct_requests": (f"{base}.rpc.{_token(topic)}.{{server}}",
                                    ("Requests to the server(s) named <server> (queue group "
                                    "'rpc').")),
                "fanout": (f"{base}.fanout.{_token(topic)}",
                           "Every server of the topic gets one copy; casts only."),
                "replies": (None, ("The request's _reply_q, also its NATS reply subject "
                                  "(<inbox prefix>.<bus id>.<msg id>): heartbeats, then one "
                                  "final reply.")),
                "notifications": (f"{base}.notify.{_token(ntopic)}.{{priority}}",
                                  ("Stored by JetStream (stream "
                                  f"{_NATS_PREFIX}_{exchange}_{ntopic}), read by durable "
                                  "consumers per pool.")),
            }[kind]
        address, description = where
        channel["address"] = address
        channel["description"] = description
        if address and "{server}" in address:
            channel["parameters"] = {"server": {"description": "the server's name"}}
        if address and "{priority}" in address:
            channel["parameters"] = {"priority": {"enum": list(PRIORITIES),
                                                  "description": "the priority, lower case"}}
        return channel

    @staticmethod
    def _operation_binding(protocol: str, kind: str) -> dict[str, Any]:
        if protocol == "amqp":
            return {"amqp": {"deliveryMode": 2, "priority": 0,
                             "mandatory": kind != "notifications",
                             "bindingVersion": _AMQP_BINDING}}
        if kind == "requests":
            return {"nats": {"queue": "rpc", "bindingVersion": _NATS_BINDING}}
        return {}


def asyncapi_document(service: Service, *, control_exchange: str = "openstack",
                      servers: Sequence[str] = DEFAULT_SERVERS,
                      asyncapi_version: str = "3.0.0") -> dict[str, Any]:
    """Describe ``service`` as an AsyncAPI document (a JSON-ready dict).

    Args:
        service: what to describe.
        control_exchange: the exchange when the service's target names none.
        servers: transport URLs (``rabbit://...``, ``nats://...``) of the brokers the
            service runs on; channels are written for each transport named.
        asyncapi_version: ``3.0.0`` (the default) or ``3.1.0``.

    Raises:
        ValueError: an AsyncAPI version or a server URL it cannot write.
    """
    if asyncapi_version not in VERSIONS:
        raise ValueError(f"AsyncAPI version {asyncapi_version!r} is not one of "
                         f"{', '.join(VERSIONS)}")
    server_objects, by_protocol, vhost = _servers(servers)
    builder = _Builder(service, control_exchange)
    builder.build_messages()
    for protocol in ("amqp", "nats"):
        if protocol in by_protocol:
            builder.add_transport(protocol, by_protocol[protocol], vhost)
    document: dict[str, Any] = {
        "asyncapi": asyncapi_version,
        "info": {"title": service.name,
                 "version": _highest([m[1] for m in builder.methods]),
                 "description": service.description or f"The {service.name} service."},
        "defaultContentType": "application/json",
        "servers": server_objects,
        "channels": builder.channels,
        "operations": builder.operations,
        "components": {"messages": builder.messages,
                       "schemas": {**builder.schemas.components, **builder.wire_schemas}},
        "x-relaybus": {"exchange": builder.exchange, "topic": builder.topic,
                       "notification_topic": service.notification_topic,
                       "protocol": "docs/protocol/README.md"},
    }
    return document
