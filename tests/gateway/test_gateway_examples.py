"""The firehose examples run: a TripleO-like workflow followed over SSE, gerrit over MQTT."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from firehose_support import ROOT, GatewayProcess, Mosquitto, SSEClient
from test_gateway_mqtt import received, subscriber

PYTHON = [sys.executable, "-m"]


@pytest.fixture
def start_example() -> Any:
    started: list[GatewayProcess] = []

    def start(module: str, *args: str) -> GatewayProcess:
        process = GatewayProcess(list(args), program=[*PYTHON, module])
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


async def test_tripleo_workflow_messages_reach_a_browser_client(
        start_example: Callable[..., GatewayProcess]) -> None:
    workflow = start_example("examples.tripleo.workflow", "--pause", "0.01")
    sse = await SSEClient.open(workflow.port, "/events?topic=tripleo/%23")
    executions: dict[str, list[dict[str, Any]]] = {}
    complete = None
    async with asyncio.timeout(15):
        while complete is None:  # until one execution was seen from its start to its end
            (message,) = await sse.events(1)
            seen = executions.setdefault(message["data"]["execution_id"], [])
            seen.append(message)
            # Seen from its very start (the stream may be joined between two messages):
            started = (seen[0]["data"]["data"].get("validation"),
                       seen[0]["data"]["data"].get("status")) == ("check-ntp", "RUNNING")
            if message["type"] == "tripleo.validations.v1.run_validations" and started:
                complete = seen
    await sse.close()
    steps = complete[:-1]
    assert {m["type"] for m in steps} == {"tripleo.validations.v1.run_validation"}
    assert all(m["firehosetopic"] ==
               "tripleo/tripleo.mistral/tripleo/validations/v1/run_validation" for m in steps)
    assert [(m["data"]["data"]["validation"], m["data"]["data"]["status"]) for m in steps][:1] \
        == [("check-ntp", "RUNNING")]
    assert len(steps) == 8 and all(m["source"] == "tripleo.mistral" for m in steps)
    failed = [m["data"]["data"]["validation"] for m in steps
              if m["data"]["data"]["status"] == "FAILED"]
    assert all(m["priority"] == "error" for m in steps if m["data"]["data"]["status"] == "FAILED")
    assert complete[-1]["data"]["data"]["failed"] == failed


def test_tripleo_workflow_declares_what_it_emits() -> None:
    sys.path.insert(0, str(ROOT))
    from examples.tripleo.workflow import workflows

    assert set(workflows.emits) == {"tripleo.validations.v1.run_validation",
                                    "tripleo.validations.v1.run_validations"}


@pytest.mark.broker
async def test_gerrit_events_on_germqtt_topics(mosquitto: Mosquitto,
                                               start_example: Callable[..., GatewayProcess]
                                               ) -> None:
    async with subscriber(mosquitto.anonymous_url, "gerrit/+/+/comment-added",
                          "gerrit/openstack-infra/germqtt/#") as client:
        start_example("examples.gerrit.publisher", "--mqtt", mosquitto.gateway_url,
                      "--pause", "0.01")
        messages = await received(client, 6)
    topics = [str(m.topic) for m in messages]
    assert "gerrit/openstack/nova/comment-added" in topics
    assert "gerrit/openstack-infra/germqtt/patchset-created" in topics
    for message in messages:
        event = json.loads(message.payload)  # type: ignore[arg-type]
        assert str(message.topic) == f"gerrit/{event['source']}/{event['type']}"
        assert event["data"]["change"]["project"] == event["source"]
