"""The gateway's parts on their own: topics, filters, CloudEvents, replay, hub, tokens, input."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import relaybus
from relaybus import Target
from relaybus.gateway import Gateway, GatewayOptions
from relaybus.gateway.auth import Access, BadToken, Tokens
from relaybus.gateway.events import Event, rfc3339
from relaybus.gateway.hub import Dropped, Gap, Hub
from relaybus.gateway.publish import BadEvent, parse_events
from relaybus.gateway.replay import ReplayBuffer
from relaybus.gateway.topics import BadFilter, FilterSet, TopicFilter, TopicTemplate


def render(template: TopicTemplate, **fields: Any) -> str:
    values = {"exchange": "nova", "bustopic": "notifications", "publisher_id": "compute.host1",
              "event_type": "compute.instance.create.end", "priority": "info", **fields}
    return template.render(**values)


def test_the_default_topic_is_exchange_publisher_and_event_type_as_levels() -> None:
    template = TopicTemplate()
    assert render(template) == "nova/compute.host1/compute/instance/create/end"
    assert render(template, exchange="gerrit", publisher_id="openstack-infra/germqtt",
                  event_type="comment-added") == "gerrit/openstack-infra/germqtt/comment-added"
    assert render(template, publisher_id=None) == "nova/unknown/compute/instance/create/end"
    assert render(template, publisher_id="a+b#c\x00") == \
        "nova/a_b_c_/compute/instance/create/end"
    assert render(TopicTemplate("{publisher_id}/{priority}"), publisher_id="$SYS") == "_SYS/info"


@pytest.mark.parametrize("template", ["", "a/#", "{exchange}/+", "{nope}", "{exchange!r}",
                                      "{exchange:>5}", "static/topic"])
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError):
        TopicTemplate(template)


@pytest.mark.parametrize(("text", "topic", "match"), [
    ("#", "nova/a/b", True), ("nova/#", "nova", True), ("nova/#", "nova/a/b", True),
    ("nova/#", "novax/a", False), ("nova/+/b", "nova/a/b", True), ("nova/+/b", "nova/a/c", False),
    ("nova/+", "nova/a/b", False), ("+/+", "a/b", True), ("+", "a/b", False),
    ("nova/a/b", "nova/a/b", True), ("nova/a", "nova/a/b", False), ("+/a/#", "x/a", True),
])
def test_filters_follow_mqtt_rules(text: str, topic: str, match: bool) -> None:
    assert TopicFilter.parse(text).matches(topic.split("/")) is match
    assert FilterSet.parse([text]).matches(topic, topic.split("/")) is match


@pytest.mark.parametrize("text", ["", "a/#/b", "a#", "a/b+", "+a", "a\x00", "x" * 1025])
def test_malformed_filters_are_refused(text: str) -> None:
    with pytest.raises(BadFilter):
        TopicFilter.parse(text)


def test_a_client_may_have_at_most_32_filters_and_none_means_everything() -> None:
    with pytest.raises(BadFilter, match="at most 32"):
        FilterSet.parse(["a"] * 33)
    assert FilterSet.parse([]).texts == ["#"]


def test_timestamps_become_rfc3339() -> None:
    assert rfc3339("2026-11-22 00:09:47.810284") == "2026-11-22T00:09:47.810284Z"
    assert rfc3339("2026-11-22 00:09:47") == "2026-11-22T00:09:47.000000Z"
    assert rfc3339("garbage").endswith("Z") and rfc3339("").endswith("Z")


def _event(seq: int, size: int = 10, topic: str = "nova/a") -> Event:
    return Event(seq, f"id{seq}", topic, "t", b"x" * size)


def test_the_replay_buffer_is_bounded_by_count_and_by_bytes() -> None:
    buffer = ReplayBuffer(max_events=3, max_bytes=1000)
    for seq in range(1, 6):
        buffer.append(_event(seq))
    assert [e.id for e in buffer.all()] == ["id3", "id4", "id5"] and buffer.evicted == 2
    assert [e.id for e in buffer.after("id3") or []] == ["id4", "id5"]
    assert buffer.after("id5") == [] and buffer.after("id1") is None
    small = ReplayBuffer(max_events=100, max_bytes=25)
    for seq in range(1, 5):
        small.append(_event(seq))
    assert [e.id for e in small.all()] == ["id3", "id4"] and small.bytes == 20
    small.append(_event(5, size=100))  # larger than the whole buffer: still kept, alone
    assert [e.id for e in small.all()] == ["id5"]


async def test_a_slow_subscriber_loses_its_oldest_events_and_is_told() -> None:
    hub = Hub(ReplayBuffer(), client_queue=3)
    slow = hub.subscribe("slow", FilterSet.parse(["#"]))
    fast = hub.subscribe("fast", FilterSet.parse(["nova/#"]))
    other = hub.subscribe("other", FilterSet.parse(["glance/#"]))
    for seq in range(1, 11):
        hub.ingest(f"id{seq}", "nova/a", "t", b"{}")
        assert [e.id for e in await fast.take()] == [f"id{seq}"]  # keeps up
    assert await slow.take() == [Dropped(7, 7)]
    assert [e.id for e in await slow.take()] == ["id8", "id9", "id10"]
    assert hub.stats()["dropped"] == 7 and fast.dropped_total == 0
    assert other.queued == 0
    assert hub.ingest("id10", "nova/a", "t", b"{}") is None  # a redelivery
    assert hub.stats()["duplicates"] == 1


async def test_resuming_replays_exactly_what_was_missed_or_marks_a_gap() -> None:
    hub = Hub(ReplayBuffer(max_events=4))
    for seq in range(1, 7):
        hub.ingest(f"id{seq}", "nova/a" if seq % 2 else "glance/b", "t", b"{}")
    resumed = hub.subscribe("r", FilterSet.parse(["nova/#"]), since="id3")
    hub.ingest("id7", "nova/a", "t", b"{}")
    assert [e.id for e in await resumed.take()] == ["id5"]  # id4, id6 are glance
    assert [e.id for e in await resumed.take()] == ["id7"]
    gapped = hub.subscribe("g", FilterSet.parse(["#"]), since="id1")
    batch = await gapped.take()
    assert batch[0] == Gap("id1", 4, "id4")
    assert [e.id for e in batch[1:]] == ["id4", "id5", "id6", "id7"]


async def test_closing_the_hub_ends_every_stream() -> None:
    hub = Hub(ReplayBuffer())
    subscriber = hub.subscribe("s", FilterSet.parse(["#"]))
    waiting = asyncio.ensure_future(subscriber.take())
    await asyncio.sleep(0)
    hub.close()
    assert await asyncio.wait_for(waiting, 5) == []
    assert await hub.subscribe("late", FilterSet.parse(["#"])).take() == []


def test_tokens() -> None:
    open_gateway = Tokens(publish="p")
    assert open_gateway.access(None) is Access.SUBSCRIBE
    assert open_gateway.access("p") is Access.PUBLISH
    with pytest.raises(BadToken):
        open_gateway.access("wrong")
    closed = Tokens(subscribe="s", publish="p")
    assert closed.access("s") is Access.SUBSCRIBE
    with pytest.raises(BadToken, match="needs a token"):
        closed.access(None)
    assert Tokens.presented({"authorization": "Bearer abc"}, {}) == "abc"
    assert Tokens.presented({}, {"token": "q"}) == "q"
    with pytest.raises(BadToken, match="Bearer"):
        Tokens.presented({"authorization": "Basic abc"}, {})
    with pytest.raises(ValueError):
        Tokens(subscribe="with space")


def test_published_events_are_checked() -> None:
    (one,) = parse_events({"type": "a.b", "data": [1], "priority": "warning"})
    assert (one.source, one.type, one.priority, one.data) == ("relaybus.gateway", "a.b",
                                                              "warn", [1])
    for body, message in [("x", "JSON object"), ({"type": ""}, "'type'"),
                          ({"type": "a", "source": 5}, "'source'"),
                          ({"type": "a\nb"}, "control"), ({"type": "a", "priority": "x"},
                                                          "priority"),
                          ({"type": "a", "datacontenttype": "text/plain"}, "datacontenttype"),
                          ([{"type": "a"}] * 1001, "1 to 1000")]:
        with pytest.raises(BadEvent, match=message):
            parse_events(body)


class Pool:
    """A listener pool of some other consumer."""

    def __init__(self, expected: int) -> None:
        self.seen: list[str] = []
        self.expected = expected
        self.done = asyncio.Event()

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict[str, Any]) -> None:
        self.seen.append(metadata["message_id"])
        if len(self.seen) >= self.expected:
            self.done.set()


async def test_the_gateway_listens_as_a_pool_of_its_own_and_steals_nothing(
        request: pytest.FixtureRequest) -> None:
    """Other pools, and the default pool, still get every notification the gateway gets."""
    url = f"memory://{request.node.name}"
    async with await relaybus.connect(url, control_exchange="nova") as bus:
        metering, default = Pool(5), Pool(5)
        gateway = Gateway(bus, GatewayOptions(http="127.0.0.1:0", topics=["notifications"]))
        async with bus.notification_listener([Target(topic="notifications")], [metering],
                                             pool="metering"), \
                bus.notification_listener([Target(topic="notifications")], [default]), \
                gateway.running():
            subscriber = gateway.hub.subscribe("test", FilterSet.parse(["nova/#"]))
            notifier = bus.notifier("compute.host1", topics=["notifications"])
            for i in range(5):
                await notifier.info({}, "compute.instance.create.end", {"i": i})
            got: list[Any] = []
            async with asyncio.timeout(10):
                while len(got) < 5:
                    got += await subscriber.take()
                await metering.done.wait()
                await default.done.wait()
    ids = [e.id for e in got]
    assert ids == metering.seen == default.seen
    first = json.loads(got[0].json)
    assert first["data"] == {"i": 0} and first["busexchange"] == "nova"


async def test_a_gateway_on_several_topics_labels_each_event_with_its_own(
        request: pytest.FixtureRequest) -> None:
    """The services notify on their control exchange ``ex``; the gateway names it."""
    url = f"memory://{request.node.name}"
    async with await relaybus.connect(url, control_exchange="ex") as services, \
            await relaybus.connect(url) as bus:
        gateway = Gateway(bus, GatewayOptions(http="127.0.0.1:0", topics=["alpha", "beta"],
                                              exchange="ex"))
        async with gateway.running():
            subscriber = gateway.hub.subscribe("test", FilterSet.parse(["#"]))
            for topic in ("alpha", "beta"):
                await services.notifier("p", topics=[topic]).info({}, f"on.{topic}", {})
            got: list[Any] = []
            async with asyncio.timeout(10):
                while len(got) < 2:
                    got += await subscriber.take()
    labels = sorted((json.loads(e.json)["bustopic"], json.loads(e.json)["type"]) for e in got)
    assert labels == [("alpha", "on.alpha"), ("beta", "on.beta")]
    assert {json.loads(e.json)["busexchange"] for e in got} == {"ex"}


def test_events_fit_the_schema_in_the_protocol_docs() -> None:
    """docs/protocol/schemas/cloudevent.json accepts what the gateway emits."""
    from pathlib import Path

    import jsonschema

    from relaybus.gateway.events import cloudevent

    schema = (Path(__file__).resolve().parents[2] / "docs" / "protocol" / "schemas"
              / "cloudevent.json")
    validator = jsonschema.Draft202012Validator(json.loads(schema.read_text()),
                                                format_checker=jsonschema.FormatChecker())
    for publisher, timestamp, payload in [("compute.host1", "2026-11-22 00:09:47.810284", 1),
                                          (None, "", None), ("p", "bad", {"a": [1]})]:
        event = cloudevent(message_id="m\n1", publisher_id=publisher, event_type="a.b",
                           priority="warn", timestamp=timestamp, payload=payload,
                           exchange="nova", bustopic="notifications", topic="nova/p/a/b")
        validator.validate(json.loads(json.dumps(event)))
    bad = dict(event, priority="loud")
    assert not validator.is_valid(bad)
    assert not validator.is_valid(dict(event, source="a b"))  # the schema holds the rule


@pytest.mark.parametrize(("publisher", "source"), [
    ("compute.host1", "compute.host1"), ("a b", "a%20b"), ("100%", "100%25"),
    ('say "hi"', "say%20%22hi%22"), ("növa", "n%C3%B6va"), ("a%20b", "a%20b"),
    ("urn:x/y?z#w", "urn:x/y?z#w")])
def test_cloudevent_source_is_a_uri_reference(publisher: str, source: str) -> None:
    from relaybus.gateway.events import cloudevent

    event = cloudevent(message_id="m", publisher_id=publisher, event_type="a.b",
                       priority="info", timestamp=None, payload=None, exchange="nova",
                       bustopic="notifications", topic="nova/p/a/b")
    assert event["source"] == source
