"""``relaybus dlq`` as a separate process on the real brokers: dead-letter, list, show,
replay (one, then all elsewhere) and purge, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_nats_support import delete_streams

import relaybus
from relaybus import DeliveryPolicy, Target
from relaybus.testing.behaviour import Recorder
from relaybus.testing.brokers import require_broker
from relaybus.testing.delivery_behaviour import Flaky

ROOT = Path(__file__).resolve().parents[2]
BROKERS = {
    "rabbit": ("rabbit://guest:guest@127.0.0.1:5672/", ("RabbitMQ", "127.0.0.1", 5672)),
    "nats": ("nats://127.0.0.1:4222", ("NATS", "127.0.0.1", 4222)),
}
LETTERS = 12  # enough for replay's progress bar

pytestmark = pytest.mark.broker


def dlq(url: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    env.update({f"RELAYBUS_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run([sys.executable, "-m", "relaybus", "dlq", *args, "--url", url],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(params=sorted(BROKERS))
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str]]:
    url, (name, host, port) = BROKERS[request.param]
    require_broker(name, host, port)
    topic = f"rb_cli_dlq_{uuid.uuid4().hex[:8]}"
    yield url, topic
    if request.param == "nats":
        await delete_streams([topic, f"{topic}_dlq", f"{topic}_again"])


async def dead_letter(bus: relaybus.Bus, topic: str, count: int) -> None:
    flaky = Flaky(failures=10_000)
    policy = DeliveryPolicy(attempts=1, dead_letter=f"{topic}_dlq")
    async with bus.notification_listener([Target(topic=topic)], [flaky], delivery=policy):
        notifier = bus.notifier("shop", topics=[topic])
        for n in range(count):
            await notifier.info({}, "order.bad", {"n": n})
        await flaky.ran.wait_for(count)


async def test_dead_letter_list_show_replay_purge(broker: tuple[str, str]) -> None:
    url, topic = broker
    letters_topic = f"{topic}_dlq"
    async with await relaybus.connect(url) as bus:
        await dead_letter(bus, topic, LETTERS)

        listed = as_json(dlq(url, "list", letters_topic, "--json"))["letters"]
        assert len(listed) == LETTERS
        assert {row["event"] for row in listed} == {"order.bad"}
        assert {row["reason"] for row in listed} == \
            {f"RuntimeError: failure {n}" for n in range(1, LETTERS + 1)}
        assert {row["attempts"] for row in listed} == {1}
        table = dlq(url, "list", letters_topic)
        assert table.returncode == 0 and f"{LETTERS} dead letter(s)" in table.stdout

        first = listed[0]["id"]
        shown = as_json(dlq(url, "show", f"{letters_topic}/{first}", "--json"))["letter"]
        assert shown["reason"]["topic"] == topic and shown["reason"]["message_id"] == first
        # a bare ID (and no TARGET) is looked for in the dead_letter_topic setting
        assert as_json(dlq(url, "show", first, "--json",
                           dead_letter_topic=letters_topic))["letter"] == shown
        assert as_json(dlq(url, "show", first, "--target", letters_topic,
                           "--json"))["letter"] == shown
        assert len(as_json(dlq(url, "list", "--json", dead_letter_topic=letters_topic))[
            "letters"]) == LETTERS

        one = dlq(url, "replay", letters_topic, "--id", first)
        assert one.returncode == 0 and "replayed 1 letter(s)" in one.stdout, one.stderr
        everything = dlq(url, "replay", letters_topic, "--all", "--to", f"{topic}_again")
        assert everything.returncode == 0, everything.stderr
        assert f"replayed {LETTERS - 1} letter(s)" in everything.stdout
        assert as_json(dlq(url, "list", letters_topic, "--json"))["letters"] == []

        back, again = Recorder(), Recorder()

        class Sink:
            def __init__(self, recorder: Recorder) -> None:
                self.recorder = recorder

            async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                           metadata: dict[str, Any]) -> None:
                self.recorder.add((ctxt["relaybus_replayed"]["from"], payload["n"]))

        async with bus.notification_listener([Target(topic=topic)], [Sink(back)]), \
                bus.notification_listener([Target(topic=f"{topic}_again")], [Sink(again)]):
            assert await back.wait_for(1) == [(first, shown["payload"]["n"])]
            assert len(await again.wait_for(LETTERS - 1)) == LETTERS - 1

        await dead_letter(bus, topic, 2)
        kept = dlq(url, "purge", letters_topic, "--older-than", "1h")
        assert kept.returncode == 0 and "purged 0 letter(s)" in kept.stdout, kept.stderr
        assert len(as_json(dlq(url, "purge", letters_topic, "--older-than", "0s",
                               "--json"))["purged"]) == 2


@pytest.mark.parametrize(("args", "says"), [
    (("replay", "t_dlq"), "give --id ID (repeatable) or --all"),
    (("purge", "t_dlq", "--older-than", "soon"), "is not a duration"),
    (("show", "an-id"), "no dead-letter topic: give TARGET, or set dead_letter_topic"),
    (("list",), "no dead-letter topic: give TARGET, or set dead_letter_topic"),
    (("show", "t_dlq/"), "names no letter id"),
    (("show", "a_dlq/x", "--target", "b_dlq"), "name two topics"),
    (("list", "bad topic!"), "Target topic 'bad topic!' must not contain whitespace"),
    (("replay", "t_dlq", "--id", "missing"), "no dead letter missing in t_dlq"),
])
def test_bad_input_is_one_line(args: tuple[str, ...], says: str) -> None:
    url, (name, host, port) = BROKERS["rabbit"]
    require_broker(name, host, port)
    result = dlq(url, *args)
    assert result.returncode == 2, result
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, \
        result.stderr
