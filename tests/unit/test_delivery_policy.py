"""DeliveryPolicy: its pauses, its checks, and the listener shorthands it stands behind."""

from __future__ import annotations

from typing import Any

import pytest

import relaybus
from relaybus import DeadLetterReason, DeliveryPolicy, Target

pytest_plugins = ["relaybus.testing.pytest_plugin"]


def test_pauses_grow_by_the_factor_up_to_the_cap() -> None:
    policy = DeliveryPolicy(attempts=10, backoff=0.5, factor=3, max_backoff=10)
    assert [policy.pause(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10, 10]
    assert DeliveryPolicy(attempts=2000, backoff=1, max_backoff=60).pause(1999) == 60


def test_jitter_takes_off_at_most_its_share() -> None:
    policy = DeliveryPolicy(attempts=3, backoff=2, jitter=0.25)
    assert policy.pause(1, rand=lambda: 0.0) == 2
    assert policy.pause(1, rand=lambda: 1.0) == 1.5
    assert all(1.5 <= policy.pause(1) <= 2 for _ in range(200))


def test_permanent_errors_by_class() -> None:
    policy = DeliveryPolicy(permanent=[KeyError])  # type: ignore[arg-type]
    assert policy.permanent == (KeyError,)
    assert policy.is_permanent(KeyError("k")) and not policy.is_permanent(ValueError())


@pytest.mark.parametrize("options", [
    {"attempts": 0}, {"attempts": 1.5}, {"attempts": True}, {"backoff": -1}, {"factor": 0.5},
    {"max_backoff": -1}, {"jitter": 1.5}, {"dead_letter": "has space"},
    {"permanent": ("KeyError",)}])
def test_bad_policies_say_what_is_wrong(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DeliveryPolicy(**options)


def test_the_shorthands_stand_for_a_policy(relaybus_bus: relaybus.Bus) -> None:
    class Endpoint:
        async def info(self, *args: Any) -> None: ...

    listener = relaybus_bus.notification_listener(
        [Target(topic="t")], [Endpoint()], retries=2, retry_backoff=0.1,
        dead_letter_topic="dlq")
    assert listener.delivery == DeliveryPolicy(attempts=3, backoff=0.1, dead_letter="dlq")
    assert relaybus_bus.notification_listener([Target(topic="t")], [Endpoint()]).delivery \
        == DeliveryPolicy()
    with pytest.raises(ValueError, match="not both"):
        relaybus_bus.notification_listener([Target(topic="t")], [Endpoint()], retries=1,
                                           delivery=DeliveryPolicy(attempts=2))
    with pytest.raises(TypeError, match="DeliveryPolicy"):
        relaybus_bus.rpc_server(Target(topic="t"), [Endpoint()], delivery=3)


def test_a_reason_round_trips_through_a_context() -> None:
    reason = DeadLetterReason(kind="cast", error_type="KeyError", error_message="'k'",
                              attempts=2, first_failure="2026-01-01T00:00:00.000000Z",
                              last_failure="2026-01-01T00:00:01.000000Z", topic="t",
                              exchange="openstack", message_id="m1", handler="record")
    context = {"relaybus_dead_letter": reason.to_json()}
    assert context["relaybus_dead_letter"]["error"] == "KeyError: 'k'"
    assert DeadLetterReason.from_context(context) == reason
    assert DeadLetterReason.from_context({}) is None
    assert DeadLetterReason.from_context({"relaybus_dead_letter": {"kind": "x"}}) is None


@pytest.mark.parametrize("delay", [-1, float("nan"), "5", True])
def test_a_delay_must_be_seconds(relaybus_bus: relaybus.Bus, delay: Any) -> None:
    with pytest.raises(ValueError, match="delay must be"):
        relaybus_bus.rpc_client(Target(topic="t")).prepare(delay=delay)
    with pytest.raises(ValueError, match="delay must be"):
        relaybus_bus.notifier("p").prepare(delay=delay)


async def test_a_delay_over_the_transports_longest_is_refused(
        relaybus_bus: relaybus.Bus) -> None:
    too_long = relaybus_bus.driver.max_delay + 1
    with pytest.raises(ValueError, match="over the memory transport's longest"):
        await relaybus_bus.rpc_client(Target(topic="t")).prepare(delay=too_long).cast(
            {}, "m")
    with pytest.raises(ValueError, match="over the memory transport's longest"):
        await relaybus_bus.notifier("p").prepare(delay=too_long).info({}, "e", {})


async def test_a_transport_that_cannot_delay_says_so(relaybus_bus: relaybus.Bus,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relaybus_bus.driver, "max_delay", 0.0)
    with pytest.raises(relaybus.TransportError, match="cannot delay"):
        await relaybus_bus.rpc_client(Target(topic="t")).prepare(delay=1).cast({}, "m")


async def test_retries_dead_letters_and_delays_are_counted(relaybus_bus: relaybus.Bus) -> None:
    import prometheus_client

    from relaybus.testing.delivery_behaviour import Flaky

    def sample(what: str, target: str, reason: str) -> float:
        return prometheus_client.REGISTRY.get_sample_value(
            f"relaybus_delivery_{what}_total", {"target": target, "reason": reason}) or 0.0

    before = (sample("retries", "metered", "RuntimeError"),
              sample("dead_letters", "metered", "RuntimeError"),
              sample("delayed", "metered", "<1s"))
    flaky = Flaky(failures=5)
    policy = DeliveryPolicy(attempts=2, backoff=0.01, dead_letter="metered_dlq")
    async with relaybus_bus.notification_listener([Target(topic="metered")], [flaky],
                                                  delivery=policy):
        notifier = relaybus_bus.notifier("p", topics=["metered"])
        await notifier.prepare(delay=0.01).info({}, "e", {})
        await flaky.ran.wait_for(2)
    assert (sample("retries", "metered", "RuntimeError"),
            sample("dead_letters", "metered", "RuntimeError"),
            sample("delayed", "metered", "<1s")) == (before[0] + 1, before[1] + 1,
                                                     before[2] + 1)
