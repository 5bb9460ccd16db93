"""The web console in a real headless Chromium: live events, filter, pause, detail, restarts."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from firehose_support import PUBLISH_TOKEN, ROOT, WAIT, GatewayProcess, event
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from relaybus.testing.brokers import require_broker

RABBIT = ("RabbitMQ", "127.0.0.1", 5672)
RABBIT_URL = "rabbit://guest:guest@127.0.0.1:5672/"


def publish(gateway: GatewayProcess, events: list[dict[str, Any]]) -> None:
    status, body = gateway.request("POST", "/publish", events,
                                   {"Authorization": f"Bearer {PUBLISH_TOKEN}"})
    assert status == 202, body


def until(browser: webdriver.Chrome, condition: Callable[[], Any], what: str) -> Any:
    """Wait (polling the page) until ``condition()`` is truthy."""
    return WebDriverWait(browser, WAIT, poll_frequency=0.05).until(
        lambda _: condition(), message=f"the console never showed {what}")


def rows(browser: webdriver.Chrome) -> list[dict[str, str]]:
    """The event rows, newest first: their id, type and topic."""
    return browser.execute_script("""
        return [...document.querySelectorAll('#events tr.event')].map(
            r => ({id: r.dataset.id, type: r.dataset.type, topic: r.dataset.topic}));""")


def status(browser: webdriver.Chrome) -> str:
    return browser.find_element(By.ID, "status").get_attribute("data-state") or ""


def test_the_console_shows_filters_pauses_and_details_events(
        browser: webdriver.Chrome, start_gateway: Callable[..., GatewayProcess],
        screenshot: Callable[[str], Path]) -> None:
    gateway = start_gateway()
    browser.get(gateway.url)
    assert browser.title == "relaybus firehose"
    until(browser, lambda: status(browser) == "live", "a live connection")
    publish(gateway, [event("compute.host1", "compute.instance.create.end", {"id": 1}),
                      event("compute.host2", "compute.instance.delete.end", {"id": 2}, "warn"),
                      event("scheduler.host1", "scheduler.select_destinations.end", {"id": 3}),
                      event("compute.host1", "compute.instance.create.end", {"id": 4})])
    until(browser, lambda: len(rows(browser)) == 4, "four events")
    assert [r["type"] for r in rows(browser)] == [
        "compute.instance.create.end", "scheduler.select_destinations.end",
        "compute.instance.delete.end", "compute.instance.create.end"]
    # Counts and rates per event type.
    until(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, "#type-rows tr")) == 3,
          "three event types")
    counts = {row.get_attribute("data-type"): row.find_element(By.CSS_SELECTOR, ".count").text
              for row in browser.find_elements(By.CSS_SELECTOR, "#type-rows tr")}
    assert counts == {"compute.instance.create.end": "2", "compute.instance.delete.end": "1",
                      "scheduler.select_destinations.end": "1"}
    rate = browser.find_element(
        By.CSS_SELECTOR, '#type-rows tr[data-type="compute.instance.create.end"] .rate').text
    assert float(rate) > 0
    # The detail view shows one event's CloudEvent JSON.
    second = browser.find_elements(By.CSS_SELECTOR, "#events tr.event")[2]
    second.click()
    detail = json.loads(browser.find_element(By.ID, "detail").text)
    assert detail["id"] == second.get_attribute("data-id")
    assert detail["data"] == {"id": 2} and detail["priority"] == "warn"
    assert detail["firehosetopic"] == "nova/compute.host2/compute/instance/delete/end"
    screenshot("stream")
    # A topic filter: only compute.host1's events, from what was kept and from now on.
    box = browser.find_element(By.ID, "filter")
    box.send_keys("nova/compute.host1/#")
    browser.find_element(By.ID, "apply").click()
    until(browser, lambda: len(rows(browser)) == 2, "only compute.host1's events")
    until(browser, lambda: status(browser) == "live", "the new subscription")
    assert "filter=nova%2Fcompute.host1%2F%23" in browser.current_url
    publish(gateway, [event("compute.host2", "compute.instance.reboot.end", {"id": 5}),
                      event("compute.host1", "compute.instance.reboot.end", {"id": 6})])
    until(browser, lambda: len(rows(browser)) == 3, "the new compute.host1 event")
    assert rows(browser)[0]["topic"] == "nova/compute.host1/compute/instance/reboot/end"
    # Pause keeps what arrives, resume shows it.
    browser.find_element(By.ID, "pause").click()
    publish(gateway, [event("compute.host1", f"compute.paused.{i}") for i in range(2)])
    until(browser, lambda: "2 waiting" in browser.find_element(By.ID, "totals").text,
          "two waiting events")
    assert len(rows(browser)) == 3 and status(browser) == "paused"
    screenshot("paused")
    browser.find_element(By.ID, "pause").click()
    until(browser, lambda: len(rows(browser)) == 5, "the events kept while paused")
    assert [r["type"] for r in rows(browser)[:2]] == ["compute.paused.1", "compute.paused.0"]
    screenshot("filtered")


def test_the_console_resumes_after_the_gateway_restarts(
        browser: webdriver.Chrome, start_gateway: Callable[..., GatewayProcess],
        screenshot: Callable[[str], Path]) -> None:
    first = start_gateway()
    browser.get(first.url + "?topic=nova/%23")
    until(browser, lambda: status(browser) == "live", "a live connection")
    publish(first, [event("compute.host1", f"before.{i}") for i in range(2)])
    until(browser, lambda: len(rows(browser)) == 2, "the first events")
    first.stop()
    until(browser, lambda: status(browser) == "reconnecting", "that it lost the gateway")
    second = start_gateway(port=first.port)
    until(browser, lambda: status(browser) == "live", "the restarted gateway")
    publish(second, [event("compute.host1", f"after.{i}") for i in range(3)])
    until(browser, lambda: len(rows(browser)) == 5, "the events after the restart")
    assert [r["type"] for r in rows(browser)] == ["after.2", "after.1", "after.0",
                                                  "before.1", "before.0"]
    markers = browser.find_elements(By.CSS_SELECTOR, "#events tr.marker")
    assert any("restarted" in m.text for m in markers)
    screenshot("restarted")


def _notify(url: str, exchange: str, types: list[str]) -> None:
    """Notify from a process of its own (the gateway is another one)."""
    code = ("import asyncio, sys, relaybus\n"
            "async def main():\n"
            f"    async with await relaybus.connect({url!r}, control_exchange={exchange!r}) as b:\n"
            "        n = b.notifier('compute.host1', topics=['notifications'])\n"
            "        for t in sys.argv[1:]:\n"
            "            await n.info({}, t, {'t': t})\n"
            "asyncio.run(main())\n")
    subprocess.run([sys.executable, "-c", code, *types], check=True, timeout=WAIT, cwd=ROOT)


@pytest.fixture
def rabbit_pool() -> Iterator[str]:
    """A gateway pool of this test's own on RabbitMQ, its queue and the gateway's replay log
    (a stream, ``<pool>.replay``) deleted afterwards."""
    require_broker(*RABBIT)
    pool = f"firehose-browser-{uuid.uuid4().hex[:8]}"
    yield pool
    import asyncio

    import aiormq

    async def delete() -> None:
        connection = await aiormq.connect("amqp://guest:guest@127.0.0.1:5672/")
        channel = await connection.channel()
        await channel.queue_delete(pool)
        await channel.queue_delete(f"{pool}.replay")
        await connection.close()

    asyncio.run(delete())


@pytest.mark.broker
def test_no_event_is_lost_across_a_gateway_restart_on_rabbitmq(
        browser: webdriver.Chrome, start_gateway: Callable[..., GatewayProcess],
        screenshot: Callable[[str], Path], rabbit_pool: str) -> None:
    """Notifications sent while the gateway is down wait in its pool's queue and show up."""
    exchange = rabbit_pool
    bus = f"{RABBIT_URL}?control_exchange={exchange}"
    first = start_gateway("--pool", rabbit_pool, bus=bus)
    browser.get(first.url + f"?topic={exchange}/%23")
    until(browser, lambda: status(browser) == "live", "a live connection")
    _notify(RABBIT_URL, exchange, ["before.0", "before.1"])
    until(browser, lambda: len(rows(browser)) == 2, "the first events")
    first.stop()
    until(browser, lambda: status(browser) == "reconnecting", "that it lost the gateway")
    _notify(RABBIT_URL, exchange, ["while.down.0", "while.down.1", "while.down.2"])
    second = start_gateway("--pool", rabbit_pool, bus=bus, port=first.port)
    until(browser, lambda: len(rows(browser)) == 5, "the events sent while it was down")
    _notify(RABBIT_URL, exchange, ["after.0"])
    until(browser, lambda: len(rows(browser)) == 6, "the events after the restart")
    assert [r["type"] for r in rows(browser)] == [
        "after.0", "while.down.2", "while.down.1", "while.down.0", "before.1", "before.0"]
    assert second.port == first.port
    screenshot("rabbit-restart")


def test_the_tripleo_workflow_watched_in_the_console(
        browser: webdriver.Chrome, start_gateway: Callable[..., GatewayProcess],
        screenshot: Callable[[str], Path]) -> None:
    workflow = start_gateway("--pause", "0.05",
                             program=[sys.executable, "-m", "examples.tripleo.workflow"])
    browser.get(workflow.url + "?topic=tripleo/%23")
    until(browser, lambda: len(rows(browser)) >= 10, "the workflow's messages")
    assert {r["type"] for r in rows(browser)} <= {"tripleo.validations.v1.run_validation",
                                                  "tripleo.validations.v1.run_validations"}
    # paused, the table stops growing: a row inserted above the one being clicked would
    # move it under the pointer (the click landed elsewhere on a loaded machine)
    browser.find_element(By.ID, "pause").click()
    until(browser, lambda: status(browser) == "paused", "the pause")
    step = '#events tr[data-type="tripleo.validations.v1.run_validation"]'
    browser.find_elements(By.CSS_SELECTOR, step)[0].click()
    detail = json.loads(browser.find_element(By.ID, "detail").text)
    assert set(detail["data"]) == {"execution_id", "data"}
    assert detail["data"]["data"]["validation"].startswith("check-")
    screenshot("tripleo")
