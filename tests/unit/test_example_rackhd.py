"""The RackHD example: its bus described, documented, and a slice of it running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from relaybus.contracts import asyncapi_document

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from examples.rackhd import services  # noqa: E402
from examples.rackhd.run import run  # noqa: E402


async def test_the_slice_runs_rpc_and_wildcard_events() -> None:
    result = await run("memory://rackhd")
    assert result["lease"] == {"mac": "52:54:00:aa:bb:01", "ip": "10.1.0.17", "pinned": True}
    assert result["in_range"] is False
    first, second = result["graph_ids"]
    assert sorted(result["events"]) == sorted([
        (f"graph.started.{first}", "running"), (f"graph.finished.{first}", "succeeded"),
        (f"graph.started.{second}", "running"), (f"graph.finished.{second}", "succeeded")])


def test_nine_exchanges_are_described() -> None:
    exchanges = {s.target.exchange for s in services.SERVICES}
    assert exchanges == {"on.configuration", "on.events", "on.http", "on.dhcp", "on.tftp",
                         "on.logging", "on.taskgraph", "on.scheduler", "on.task"}


@pytest.mark.parametrize("service", services.SERVICES, ids=lambda s: s.name)
def test_every_service_documents_as_valid_asyncapi(service: Any, node_modules: Path) -> None:
    schema_path = node_modules / "@asyncapi" / "specs" / "schemas" / "3.0.0-without-$id.json"
    validator = jsonschema.Draft7Validator(json.loads(schema_path.read_text()))
    document = json.loads(json.dumps(asyncapi_document(service)))
    assert [e.message for e in validator.iter_errors(document)] == []


def test_dhcp_document_lists_rackhd_methods_and_events_document_wildcards() -> None:
    dhcp = asyncapi_document(services.dhcp)
    assert {op["title"] for op in dhcp["operations"].values()} >= {
        "lookupIpLease", "ipInRange", "peekLeaseTable", "pinMac", "unpinMac", "removeLease"}
    assert "Exchange 'on.dhcp'" in dhcp["channels"]["requests"]["description"]
    events = asyncapi_document(services.events)
    names = {m["name"] for m in events["components"]["messages"].values()}
    assert "graph.finished.<graphid>" in names and "requests" not in events["channels"]
    logging = asyncapi_document(services.logging)
    emerg = logging["components"]["schemas"]["notification.event_log_emerg"]
    assert emerg["properties"]["priority"] == {"const": "CRITICAL"}


def test_docs_command_on_the_example() -> None:
    result = subprocess.run([sys.executable, "-m", "relaybus", "docs",
                             "examples.rackhd.services:task_graph_runner", "--format", "json"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert "runTaskGraph" in {op.get("title") for op in document["operations"].values()}
