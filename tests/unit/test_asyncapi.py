"""AsyncAPI documents that tools can use: the official parser accepts them, the payloads are
the wire's envelope, the failure agrees with failure.json, the examples are real calls.

``@asyncapi/parser`` (tests/interop/node) parses each document the way AsyncAPI's own tools
(generator, studio, CLI) do: schema validation, ``$ref`` resolution and its rule set.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import relaybus
from relaybus import Service, Target
from relaybus.contracts import asyncapi_document
from relaybus.contracts.html import render_html

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "protocol" / "schemas"
sys.path.insert(0, str(ROOT))
from examples.compute.service import compute  # noqa: E402
from examples.rackhd import services as rackhd  # noqa: E402
from examples.tripleo.workflow import workflows  # noqa: E402

# methods with typed structs, events only, RPC and events with wildcards, log levels; every
# RackHD service is also checked against the AsyncAPI JSON Schema in test_example_rackhd.py
SERVICES = [compute, workflows, rackhd.dhcp, rackhd.task_graph_runner, rackhd.logging]


def _parse(node_modules: Path, tmp_path: Path, documents: dict[str, Any]) -> dict[str, Any]:
    """What @asyncapi/parser says of each document: parsed, version, errors."""
    paths = []
    for name, document in documents.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(document))
        paths.append(str(path))
    result = subprocess.run(["node", str(node_modules.parent / "asyncapi_check.js"), *paths],
                            capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(result.stdout)
    return {Path(path).stem: verdict for path, verdict in report.items()}


def test_the_official_parser_accepts_every_document(node_modules: Path,
                                                    tmp_path: Path) -> None:
    documents = {f"{s.name}-3.0.0": asyncapi_document(s) for s in SERVICES}
    documents.update({f"{s.name}-3.1.0": asyncapi_document(s, asyncapi_version="3.1.0")
                      for s in (compute, workflows)})
    documents["nats-only"] = asyncapi_document(compute, servers=["nats://a:4222,b:4222"])
    broken = asyncapi_document(compute)
    broken["operations"]["compute_run_instance"]["reply"]["messages"][0]["$ref"] += "_nope"
    documents["broken"] = broken
    report = _parse(node_modules, tmp_path, documents)
    assert report.pop("broken")["errors"], "the parser must be able to say no"
    for name, verdict in report.items():
        assert verdict["errors"] == [] and verdict["parsed"], (name, verdict["errors"])
        assert verdict["version"] == ("3.0.0" if name.endswith(("3.0.0", "only"))
                                      else "3.1.0")


def test_an_unknown_version_or_transport_is_refused() -> None:
    with pytest.raises(ValueError, match=r"3\.0\.0, 3\.1\.0"):
        asyncapi_document(compute, asyncapi_version="2.6.0")
    with pytest.raises(ValueError, match="memory://"):
        asyncapi_document(compute, servers=["memory://"])


def _decoded(document: dict[str, Any], message: dict[str, Any]) -> jsonschema.Validator:
    """A validator for the JSON text inside a message's envelope."""
    ref = message["payload"]["properties"]["oslo.message"]["contentSchema"]["$ref"]
    root = {"$ref": ref, "components": document["components"]}
    return jsonschema.Draft7Validator(root)


def test_payloads_are_the_envelope_and_examples_fit_it() -> None:
    document = asyncapi_document(compute)
    envelope = json.loads((SCHEMAS / "envelope.json").read_text())
    for key, message in document["components"]["messages"].items():
        payload = message["payload"]
        assert payload["required"] == envelope["required"], key
        assert payload["properties"]["oslo.version"]["enum"] == \
            envelope["properties"]["oslo.version"]["enum"]
        assert payload["properties"]["oslo.message"]["contentMediaType"] == "application/json"
        for sample in message.get("examples", []):
            jsonschema.validate(sample["payload"], payload)
            body = json.loads(sample["payload"]["oslo.message"])
            assert list(_decoded(document, message).iter_errors(body)) == [], key
            if body.get("failure"):
                failure = jsonschema.Draft7Validator(
                    {"$ref": "#/components/schemas/relaybus.failure",
                     "components": document["components"]})
                assert list(failure.iter_errors(json.loads(body["failure"]))) == []
    assert {k for k, m in document["components"]["messages"].items() if "examples" in m} \
        == set(document["components"]["messages"])  # every message has an example


def test_request_schemas_agree_with_the_protocol() -> None:
    protocol = json.loads((SCHEMAS / "request.json").read_text())
    schemas = asyncapi_document(compute)["components"]["schemas"]
    request = schemas["request.compute_run_instance"]
    assert set(request["properties"]) == set(protocol["properties"])
    assert "args" not in request["required"]  # args is optional, as the protocol says
    assert set(request["required"]) == set(protocol["required"]) | {"namespace"}
    assert request["properties"]["_timeout"]["type"] == protocol["properties"]["_timeout"]["type"]
    validator = jsonschema.Draft7Validator({"$ref": "#/components/schemas/"
                                                    "request.compute_run_instance",
                                            "components": {"schemas": schemas}})
    old_oslo_call = {"method": "run_instance", "namespace": "compute", "_unique_id": "a" * 32,
                     "_msg_id": "b" * 32, "_reply_q": "reply_x"}  # no args, no _timeout
    assert list(validator.iter_errors(old_oslo_call)) == []
    assert list(validator.iter_errors({**old_oslo_call, "namespace": "other"}))
    reply = json.loads((SCHEMAS / "reply.json").read_text())
    assert schemas["reply.compute_run_instance"]["required"] == reply["required"]


def test_the_failure_agrees_with_failure_json() -> None:
    protocol = json.loads((SCHEMAS / "failure.json").read_text())
    del protocol["$schema"], protocol["$id"]
    document = asyncapi_document(compute)
    assert document["components"]["schemas"]["relaybus.failure"] == protocol
    failed = document["components"]["schemas"]["relaybus.failed_reply"]
    assert failed["properties"]["failure"]["contentSchema"] == \
        {"$ref": "#/components/schemas/relaybus.failure"}


def test_replies_say_where_they_go_and_bindings_name_the_topology() -> None:
    document = asyncapi_document(compute, servers=["rabbit://u:p@r1:5672/nova",
                                                   "nats://n1:4222"])
    assert document["servers"]["rabbitmq"] == {
        "host": "r1:5672", "protocol": "amqp", "protocolVersion": "0.9.1",
        "title": "AMQP broker", "description": "relaybus transport URL rabbit://r1:5672/nova"}
    assert document["servers"]["nats"]["protocol"] == "nats"
    for key, operation in document["operations"].items():
        if operation["action"] == "receive":
            assert operation["reply"]["address"]["location"] == "$message.payload#/_reply_q"
            reply_channel = operation["reply"]["channel"]["$ref"].rsplit("/", 1)[1]
            assert document["channels"][reply_channel]["address"] is None, key
    channels = document["channels"]
    assert channels["requests"]["bindings"]["amqp"]["exchange"] == {
        "name": "openstack", "type": "topic", "durable": False, "autoDelete": False,
        "vhost": "nova"}
    assert channels["fanout"]["bindings"]["amqp"]["exchange"]["type"] == "fanout"
    assert channels["requests"]["servers"] == [{"$ref": "#/servers/rabbitmq"}]
    assert channels["nats_requests"]["address"] == "relaybus.openstack.rpc.compute"
    assert channels["nats_notifications"]["address"] == \
        "relaybus.openstack.notify.notifications.{priority}"
    assert document["operations"]["nats_compute_run_instance"]["bindings"] == \
        {"nats": {"queue": "rpc", "bindingVersion": "0.1.0"}}
    assert channels["nats_requests"]["servers"] == [{"$ref": "#/servers/nats"}]


def test_the_html_page_links_and_shows_a_call_that_works() -> None:
    document = asyncapi_document(compute)
    page = render_html(document)
    assert "<h2>Contents</h2>" in page
    assert "href='#method-compute_run_instance'" in page
    assert "id='method-compute_run_instance'" in page
    # a $ref in a schema is a link to the type's section, which exists
    assert "<a href='#schema-Instance'>&quot;#/components/schemas/Instance&quot;</a>" in page
    assert "id='schema-Instance'" in page
    assert "relaybus call compute run_instance --args" in page
    assert "--namespace compute --version 1.3" in page
    # the example arguments are accepted by the service itself
    request = document["components"]["messages"]["compute_run_instance_request"]
    body = json.loads(request["examples"][0]["payload"]["oslo.message"])

    async def call() -> Any:
        async with await relaybus.connect("memory://asyncapi-example") as bus:
            async with bus.rpc_server(Target(topic="compute", server="h"), compute.endpoints):
                client = bus.rpc_client(Target(topic="compute", namespace=body["namespace"],
                                               version=body["version"]))
                return await client.call({}, body["method"], **body["args"])

    assert asyncio.run(call())["instance_id"] == body["args"]["instance_id"]


def test_docs_command_writes_3_1_for_the_servers_given(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    result = subprocess.run(
        [sys.executable, "-m", "relaybus", "docs", "examples.compute.service:compute",
         "--format", "json", "--asyncapi-version", "3.1.0", "--server", "nats://n:4222",
         "-o", str(out)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert document["asyncapi"] == "3.1.0" and list(document["servers"]) == ["nats"]
    assert not any(name.startswith("requests") for name in document["channels"])
    bad = subprocess.run([sys.executable, "-m", "relaybus", "docs",
                          "examples.compute.service:compute", "--server", "bogus://x"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr


def test_a_service_without_methods_has_no_request_channels() -> None:
    events_only = Service("e", Target(topic="e"), [], emits={"x.y": dict})
    document = asyncapi_document(events_only)
    assert set(document["channels"]) == {"notifications", "nats_notifications"}
