"""The middleware examples: a tenant check from the context, a per-endpoint rate limit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import relaybus
from relaybus import Target
from relaybus.testing.behaviour import WAIT, Recorder

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.middleware.ratelimit import RateLimit, RateLimited, TokenBucket
from examples.middleware.tenant import CURRENT_TENANT, TenantCheck, TenantRejected


class Compute:
    def __init__(self, recorder: Recorder | None = None) -> None:
        self.recorder = recorder

    async def whoami(self, ctxt: dict[str, Any]) -> dict[str, Any]:
        return {"tenant": ctxt.get("tenant"), "checked": ctxt.get("tenant_checked")}

    async def resize(self, ctxt: dict[str, Any], size: int) -> None:
        assert self.recorder is not None
        self.recorder.add((ctxt.get("tenant"), size))

    async def ping(self, ctxt: dict[str, Any]) -> str:
        return "pong"


async def test_the_tenant_check_stamps_checks_and_rejects_with_its_type() -> None:
    recorder = Recorder()
    async with await relaybus.connect("memory://tenant",
                                      middleware=[TenantCheck({"acme"})]) as bus:
        async with bus.rpc_server(Target(topic="compute", server="s1"), [Compute(recorder)]):
            client = bus.rpc_client(Target(topic="compute"), timeout=WAIT,
                                    allowed_remote_exmods=["examples.middleware.tenant"])
            CURRENT_TENANT.set("acme")
            assert await client.call({}, "whoami") == {"tenant": "acme", "checked": True}
            CURRENT_TENANT.set("globex")
            with pytest.raises(TenantRejected, match="'globex' is not served here"):
                await client.call({}, "whoami")
            await client.cast({}, "resize", size=1)  # rejected: counted, not run
            CURRENT_TENANT.set("acme")
            await client.cast({}, "resize", size=2)
            assert await recorder.wait_for(1) == [("acme", 2)]


async def test_a_caller_without_the_tenant_module_sees_a_remote_error_naming_it() -> None:
    async with await relaybus.connect("memory://tenant2") as client_bus, \
            await relaybus.connect("memory://tenant2",
                                   middleware=[TenantCheck({"acme"})]) as server_bus:
        async with server_bus.rpc_server(Target(topic="compute", server="s1"), [Compute()]):
            client = client_bus.rpc_client(Target(topic="compute"), timeout=WAIT)
            with pytest.raises(relaybus.RemoteError) as caught:
                await client.call({}, "whoami")  # no tenant at all
            assert caught.value.exc_type == "TenantRejected"
            assert await client.call({"tenant": "acme"}, "whoami") == {"tenant": "acme",
                                                                       "checked": True}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_rate_limit_answers_with_a_typed_error_per_endpoint() -> None:
    clock = Clock()
    limit = RateLimit(rate=2, burst=2, clock=clock)
    async with await relaybus.connect("memory://ratelimit", middleware=[limit]) as bus:
        async with bus.rpc_server(Target(topic="compute", server="s1"), [Compute()]):
            client = bus.rpc_client(Target(topic="compute"), timeout=WAIT,
                                    allowed_remote_exmods=["examples.middleware.ratelimit"])
            assert [await client.call({}, "ping") for _ in range(2)] == ["pong", "pong"]
            with pytest.raises(RateLimited, match=r"compute\.ping is over its limit") as caught:
                await client.call({}, "ping")
            assert caught.value.retry_after == pytest.approx(0.5)  # travelled in kwargs
            # another endpoint has its own bucket
            assert (await client.call({}, "whoami"))["tenant"] is None
            # junk names get no bucket: the server's own answer comes back
            for _ in range(3):
                with pytest.raises(relaybus.NoSuchMethod):
                    await client.call({}, "no_such_thing")
            clock.now += 0.5  # one token back
            assert await client.call({}, "ping") == "pong"
    assert sorted(limit._buckets) == ["compute.ping", "compute.whoami"]


def test_the_token_bucket_refills_up_to_its_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.1)
    clock.now += 60  # a long quiet spell saves no more than the burst
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() > 0
    with pytest.raises(ValueError):
        RateLimit(rate=0, burst=1)
