"""The protocol docs are true: schemas are valid, relaybus output fits them and the vectors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "protocol" / "schemas"
VECTORS = ROOT / "tests" / "vectors" / "relaybus"
KIND = {"call_request": "request", "cast_request": "request", "failure_request": "request",
        "call_reply": "reply", "failure_reply": "reply", "notification": "notification"}


def _registry() -> Registry:
    resources = []
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{kind}.json").read_text())
    return jsonschema.Draft202012Validator(schema, registry=_registry(),
                                           format_checker=jsonschema.FormatChecker())


def _load_vector_maker() -> Any:
    spec = importlib.util.spec_from_file_location("make_vectors", VECTORS / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _without(document: Any, pointers: list[str]) -> Any:
    document = json.loads(json.dumps(document))
    for pointer in pointers:
        *parents, last = pointer.lstrip("/").split("/")
        node = document
        for part in parents:
            node = node[part]
        node.pop(last)
    return document


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.json")), ids=lambda p: p.name)
def test_schemas_are_valid_draft_2020_12(path: Path) -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


@pytest.mark.parametrize("name", sorted(KIND))
def test_vectors_fit_the_schemas(name: str) -> None:
    vector = json.loads((VECTORS / f"{name}.json").read_text())
    body = json.loads(vector["body"])
    validator("envelope").validate(body)
    message = json.loads(body["oslo.message"])
    validator(KIND[name]).validate(message)
    if isinstance(message.get("failure"), str):
        validator("failure").validate(json.loads(message["failure"]))


async def test_relaybus_output_matches_the_vectors() -> None:
    produced = await _load_vector_maker().capture()
    assert set(produced) == set(KIND)
    for name, now in produced.items():
        vector = json.loads((VECTORS / f"{name}.json").read_text())
        pointers = vector["variable_members"]
        assert (now["exchange"], now["routing_key"]) == \
            (vector["exchange"], vector["routing_key"]), name
        assert _without(now["decoded"]["oslo.message"], pointers) == \
            _without(vector["decoded"]["oslo.message"], pointers), name
        validator(KIND[name]).validate(json.loads(json.loads(now["body"])["oslo.message"]))


@pytest.mark.parametrize("kind, bad", [
    ("request", {"args": {}, "_unique_id": "0" * 32}),
    ("request", {"method": "m", "_unique_id": "0" * 32, "_msg_id": "0" * 32}),
    ("request", {"method": "m", "_unique_id": "0" * 32, "version": None}),
    ("reply", {"result": 1, "failure": None, "_msg_id": "x"}),
    ("notification", {"message_id": "not-a-uuid", "publisher_id": "p", "event_type": "e",
                      "priority": "INFO", "payload": {}, "timestamp": "2026-01-01 00:00:00"}),
    ("notification", {"message_id": "5b1a6f0e-0000-4000-8000-000000000000",
                      "publisher_id": "p", "event_type": "e", "priority": "info",
                      "payload": {}, "timestamp": "2026-01-01T00:00:00"}),
    ("envelope", {"oslo.version": "3.0", "oslo.message": "{}"}),
])
def test_schemas_reject_what_receivers_reject(kind: str, bad: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validator(kind).validate(bad)


def test_cloudevent_vector_is_what_the_firehose_makes_of_the_notification_vector() -> None:
    maker = _load_vector_maker()
    note = json.loads((VECTORS / "notification.json").read_text())
    vector = json.loads((VECTORS / "cloudevent.json").read_text())
    event = maker.cloudevent_of(note["decoded"]["oslo.message"], note["exchange"],
                                note["routing_key"].rsplit(".", 1)[0])
    assert json.loads(json.dumps(event)) == vector["event"]
    assert event["firehosetopic"] == "openstack/compute.host1/compute/instance/create/end"
    assert (event["id"], event["source"], event["type"]) == (
        note["decoded"]["oslo.message"]["message_id"], "compute.host1",
        "compute.instance.create.end")
    validator("cloudevent").validate(vector["event"])
