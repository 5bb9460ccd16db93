"""Service descriptions, generated AsyncAPI documents and the docs command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import relaybus
from relaybus import Service, Target
from relaybus.contracts import asyncapi_document

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from test_typed_endpoints import InstanceCreated, Scheduler  # noqa: E402

SERVICE = Service("scheduler", Target(topic="scheduler", exchange="nova"), [Scheduler()],
                  emits={"compute.instance.create.end": InstanceCreated,
                         "compute.instance.delete.error": (InstanceCreated, "error")},
                  description="Picks hosts for new instances.")


@pytest.fixture(scope="module")
def asyncapi_schema(node_modules: Path) -> jsonschema.Draft7Validator:
    path = node_modules / "@asyncapi" / "specs" / "schemas" / "3.0.0-without-$id.json"
    return jsonschema.Draft7Validator(json.loads(path.read_text()))


def _errors(validator: jsonschema.Draft7Validator, document: Any) -> list[str]:
    plain = json.loads(json.dumps(document))
    return [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(plain)]


def test_document_validates_against_asyncapi_3(asyncapi_schema: Any) -> None:
    assert _errors(asyncapi_schema, asyncapi_document(SERVICE)) == []


def test_the_validator_is_not_a_rubber_stamp(asyncapi_schema: Any) -> None:
    broken = asyncapi_document(SERVICE)
    broken["operations"]["default_select"]["action"] = "publish"
    assert _errors(asyncapi_schema, broken)


def test_document_describes_methods_types_and_events() -> None:
    doc = asyncapi_document(SERVICE)
    assert doc["asyncapi"] == "3.0.0" and doc["info"]["title"] == "scheduler"
    assert doc["channels"]["requests"]["address"] == "scheduler"
    assert doc["channels"]["direct_requests"]["address"] == "scheduler.{server}"
    assert "Exchange 'nova'" in doc["channels"]["requests"]["description"]
    select = doc["components"]["messages"]["default_select_request"]
    assert select["summary"] == "Pick a host for a flavor."
    decoded = select["payload"]["properties"]["oslo.message"]["contentSchema"]
    assert decoded == {"$ref": "#/components/schemas/request.default_select"}
    schemas = doc["components"]["schemas"]
    args = schemas["request.default_select"]["properties"]["args"]
    assert args["required"] == ["flavor", "hosts"]
    assert args["properties"]["flavor"] == {"$ref": "#/components/schemas/Flavor"}
    assert args["properties"]["hosts"] == {"type": "array", "items": {"type": "string"}}
    assert schemas["Flavor"]["required"] == ["name", "vcpus"]
    assert "Quota" in schemas  # from the pydantic model
    reply = schemas["reply.default_select"]
    assert reply["properties"]["result"] == {"$ref": "#/components/schemas/Placement"}
    untyped = schemas["request.default_untyped"]
    assert untyped["properties"]["args"]["properties"] == {"value": {}, "other": {}}
    events = doc["channels"]["notifications"]["messages"]
    assert set(events) == {"event_compute_instance_create_end",
                           "event_compute_instance_delete_error"}
    error = schemas["notification.event_compute_instance_delete_error"]
    assert error["properties"]["priority"] == {"const": "ERROR"}


def test_namespaces_and_versions_are_documented() -> None:
    class Versioned:
        target = Target(namespace="compute", version="2.4")

        def run(self, ctxt: Any) -> None:
            """Run it."""

    doc = asyncapi_document(Service("c", Target(topic="c"), [Scheduler(), Versioned()]))
    operation = doc["operations"]["compute_run"]
    assert (operation["x-relaybus-namespace"], operation["x-relaybus-version"]) == \
        ("compute", "2.4")
    assert doc["info"]["version"] == "2.4"
    request = doc["components"]["schemas"]["request.compute_run"]
    assert request["properties"]["namespace"]["const"] == "compute"
    assert "namespace" in request["required"] and "args" not in request["required"]


@pytest.mark.parametrize("kwargs", [
    {"name": "", "target": Target(topic="t"), "endpoints": [Scheduler()]},
    {"name": "s", "target": Target(), "endpoints": [Scheduler()]},
    {"name": "s", "target": Target(topic="t"), "endpoints": []},
    {"name": "s", "target": Target(topic="t"), "endpoints": [Scheduler()],
     "emits": {"e": (InstanceCreated,)}},
])
def test_bad_service_descriptions(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Service(**kwargs)


def _docs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relaybus", "docs", *args],
                          capture_output=True, text=True, timeout=60, cwd=HERE)


def test_docs_command_formats(asyncapi_schema: Any) -> None:
    as_json = _docs("test_contracts:SERVICE", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert _errors(asyncapi_schema, json.loads(as_json.stdout)) == []
    as_yaml = _docs("test_contracts:SERVICE")
    assert yaml.safe_load(as_yaml.stdout) == json.loads(as_json.stdout)
    as_html = _docs("test_contracts:SERVICE", "--format", "html")
    assert "<h1>scheduler" in as_html.stdout and "Pick a host for a flavor." in as_html.stdout
    endpoint = _docs("test_typed_endpoints:Scheduler", "--topic", "sched", "--format", "json")
    assert json.loads(endpoint.stdout)["channels"]["requests"]["address"] == "sched"


@pytest.mark.parametrize("args, message", [
    (["no_such_module:thing"], "cannot import module 'no_such_module'"),
    (["test_contracts:NOPE"], "has no attribute 'NOPE'"),
    (["test_contracts"], "expected MODULE:OBJECT"),
    (["test_typed_endpoints:Scheduler"], "needs --topic"),
    (["json:dumps"], "is a function"),
    (["test_contracts:Empty", "--topic", "t"], "has no public methods"),
])
def test_docs_command_bad_references_say_so_in_one_line(args: list[str], message: str) -> None:
    result = _docs(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


class Empty:
    """An object with nothing to serve."""


def test_a_service_runs_with_the_plain_api() -> None:
    import asyncio

    async def run() -> Any:
        async with await relaybus.connect("memory://service") as bus:
            async with bus.rpc_server(SERVICE.target.replace(server="s1"), SERVICE.endpoints):
                client = bus.rpc_client(SERVICE.target, timeout=10)
                return await client.call({}, "select", flavor={"name": "m", "vcpus": 1},
                                         hosts=["h9"])

    assert asyncio.run(run())["host"] == "h9"
