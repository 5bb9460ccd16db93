"""Tokens scoped to topic filters, for subscribing and for publishing (a tokens file, as
Mosquitto's ACLs and Mercure's JWT selectors): the filter algebra, the file, and the gateway
enforcing them on /ws, /events and /publish."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from firehose_support import (
    PUBLISH_TOKEN,
    WAIT,
    GatewayProcess,
    SSEClient,
    event,
    ws_client,
    ws_events,
)
from websockets.asyncio.client import connect

from relaybus.gateway.auth import BadToken, OutOfScope, Tokens, load_tokens_file
from relaybus.gateway.topics import FilterSet, NarrowedFilterSet, TopicFilter

COMPUTE, OBSERVER = "compute-token", "observer-token"
TOKENS = f"""
[[token]]
name = "compute"
token = "{COMPUTE}"
subscribe = ["nova/compute/#"]
publish = ["nova/compute/#"]

[[token]]
name = "observer"
token_env = "OBSERVER_TOKEN"
subscribe = ["nova/compute/#", "nova/+/instance/#"]
"""


@pytest.mark.parametrize(("scope", "wanted", "covers", "overlaps"), [
    ("#", "nova/#", True, True),
    ("nova/#", "#", False, True),
    ("nova/#", "nova", True, True),            # 'nova/#' matches its parent too
    ("nova", "nova/#", False, True),           # ... so they share the topic 'nova'
    ("nova/#", "keystone/#", False, False),
    ("nova/#", "+/compute", False, True),
    ("nova/+/x", "nova/a/x", True, True),
    ("nova/a/x", "nova/+/x", False, True),
    ("nova/+", "nova/a/b", False, False),
    ("nova/+/#", "nova", False, False),        # '+' needs a level: 'nova' alone is not in
    ("nova/+/#", "nova/a", True, True),
    ("a/b", "a/b", True, True),
    ("a/b", "a/c", False, False),
])
def test_filter_containment_and_overlap(scope: str, wanted: str, covers: bool,
                                        overlaps: bool) -> None:
    a, b = TopicFilter.parse(scope), TopicFilter.parse(wanted)
    assert a.covers(b) is covers
    assert a.overlaps(b) is overlaps and b.overlaps(a) is overlaps


def _tokens(tmp_path: Path, text: str = TOKENS, **kwargs: str) -> Tokens:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    return Tokens(**kwargs, scoped=load_tokens_file(path, {"OBSERVER_TOKEN": OBSERVER}))


def test_a_subscription_is_kept_narrowed_or_refused(tmp_path: Path) -> None:
    grant = _tokens(tmp_path).grant(COMPUTE)
    inside = FilterSet.parse(["nova/compute/instance/#"])
    assert grant.subscription(inside) is inside
    narrowed = grant.subscription(FilterSet.parse(["#"]))
    assert isinstance(narrowed, NarrowedFilterSet) and narrowed.texts == ["#"]
    assert narrowed.matches("nova/compute/a", ("nova", "compute", "a"))
    assert not narrowed.matches("nova/identity/a", ("nova", "identity", "a"))
    with pytest.raises(OutOfScope, match="'keystone/#' is outside what compute may"):
        grant.subscription(FilterSet.parse(["nova/compute/#", "keystone/#"]))
    grant.check_publish(["nova/compute/instance/create"])
    with pytest.raises(OutOfScope, match="event 1: topic 'nova/identity/x' is outside"):
        grant.check_publish(["nova/compute/x", "nova/identity/x"])
    with pytest.raises(OutOfScope, match="observer may not publish"):
        _tokens(tmp_path).grant(OBSERVER).check_publish(["nova/compute/x"])


def test_a_tokens_file_closes_the_gateway_to_clients_without_a_token(tmp_path: Path) -> None:
    tokens = _tokens(tmp_path, publish=PUBLISH_TOKEN)
    with pytest.raises(BadToken, match="needs a token"):
        tokens.grant(None)
    assert tokens.grant(PUBLISH_TOKEN).scoped is False  # the unscoped tokens stay whole
    assert tokens.can_publish
    opened = _tokens(tmp_path, TOKENS + '\n[anonymous]\nsubscribe = ["public/#"]\n')
    assert opened.grant(None).subscribe is not None
    assert opened.grant(None).publish is None


@pytest.mark.parametrize(("text", "message"), [
    ('[[token]]\ntoken = "a"\n', "allows nothing"),
    ('[[token]]\ntoken = "a"\nsubscribe = []\n', "non-empty list"),
    ('[[token]]\ntoken = "a"\nsubscribe = ["a/#/b"]\n', "'#' must be a whole level"),
    ('[[token]]\ntoken = "a"\nsubscribe = ["#"]\nread = ["#"]\n', "unknown key(s) read"),
    ('[[token]]\ntoken_env = "NOPE"\nsubscribe = ["#"]\n', "'NOPE' is not set"),
    ('[[token]]\ntoken = "a b"\nsubscribe = ["#"]\n', "without spaces"),
    ('[[token]]\nsubscribe = ["#"]\n', "exactly one of 'token' and 'token_env'"),
    ('[anonymous]\nsubscribe = ["#"]\npublish = ["#"]\n', "publishing always needs a token"),
    ("[[token]\n", "not valid TOML"),
])
def test_bad_tokens_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_tokens_file(path, {})


def test_the_same_token_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="given twice"):
        _tokens(tmp_path, publish=COMPUTE)


def test_the_command_refuses_a_bad_tokens_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text('[[token]]\nname = "ui"\ntoken = "a"\nsubscribe = ["nova/#/x"]\n')
    result = subprocess.run([sys.executable, "-m", "relaybus", "firehose", "--http",
                             "127.0.0.1:0", "--tokens-file", str(path)],
                            capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 2, result.stderr
    assert "tokens file" in result.stderr and "token 'ui': 'subscribe'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def scoped_gateway(start_gateway: Callable[..., GatewayProcess],
                   tmp_path: Path) -> GatewayProcess:
    path = tmp_path / "tokens.toml"
    path.write_text(TOKENS)
    gateway = start_gateway("--tokens-file", str(path))
    return gateway


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _stats(gateway: GatewayProcess) -> dict[str, int]:
    status, stats = await asyncio.to_thread(gateway.request, "GET", "/stats", None,
                                            _auth(PUBLISH_TOKEN))
    assert status == 200, stats
    assert stats["auth"]["scoped_tokens"] == 2  # a count: names stay with the operator
    return dict(stats["auth"]["refused"])


@pytest.fixture(autouse=True)
def _observer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSERVER_TOKEN", OBSERVER)  # the gateway process reads it


async def test_a_wider_subscription_is_narrowed_to_the_tokens_scope(
        scoped_gateway: GatewayProcess) -> None:
    gateway = scoped_gateway
    async with connect(gateway.ws_url(["#"], token=COMPUTE)) as websocket:
        hello = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
        assert hello["filters"] == ["#"] and hello["scope"] == ["nova/compute/#"]
        assert hello["access"] == "publish"
        await gateway.publish([event("identity", "token.issued"),
                               event("compute", "instance.create.end")])
        (only,) = await ws_events(websocket, 1)
    assert only["type"] == "instance.create.end"
    async with ws_client(gateway.ws_url(["nova/compute/#"], token=COMPUTE)) as inside:
        await gateway.publish(event("compute", "instance.delete.end"))
        assert (await ws_events(inside, 1))[0]["type"] == "instance.delete.end"


async def test_a_subscription_outside_the_scope_is_refused(
        scoped_gateway: GatewayProcess) -> None:
    gateway = scoped_gateway
    sse = await SSEClient.open(gateway.port, "/events?topic=nova/identity/token/%23",
                               _auth(OBSERVER))
    body = await sse.body()
    await sse.close()
    assert sse.status == 403 and body["error"] == "subscribe-out-of-scope", body
    assert "nova/compute/#, nova/+/instance/#" in body["message"]
    async with connect(gateway.ws_url(["keystone/#"], token=COMPUTE)) as websocket:
        error = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
        await websocket.wait_closed()
    assert error["error"] == "subscribe-out-of-scope"
    assert websocket.close_code == 4403
    sse = await SSEClient.open(gateway.port, "/events")  # no token: the file closes it
    assert sse.status == 401
    await sse.close()
    refused = await _stats(gateway)
    assert refused["subscribe-out-of-scope"] == 2 and refused["bad-token"] == 1


async def test_publishing_outside_the_scope_is_refused_and_nothing_is_sent(
        scoped_gateway: GatewayProcess) -> None:
    gateway = scoped_gateway
    async with ws_client(gateway.ws_url(["#"], token=PUBLISH_TOKEN)) as watcher:
        status, body = await asyncio.to_thread(
            gateway.request, "POST", "/publish",
            [event("compute", "allowed.first"), event("identity", "not.allowed")],
            _auth(COMPUTE))
        assert status == 403 and body["error"] == "publish-out-of-scope", body
        assert "event 1: topic 'nova/identity/not/allowed'" in body["message"]
        status, body = await asyncio.to_thread(
            gateway.request, "POST", "/publish", event("compute", "allowed.alone"),
            _auth(COMPUTE))
        assert status == 202, body
        status, body = await asyncio.to_thread(
            gateway.request, "POST", "/publish", event("compute", "x"), _auth(OBSERVER))
        assert status == 403 and body["error"] == "forbidden"
        (seen,) = await ws_events(watcher, 1)  # the refused batch sent nothing
        assert seen["type"] == "allowed.alone"
    async with ws_client(gateway.ws_url(["nova/compute/#"], token=COMPUTE)) as websocket:
        await websocket.send(json.dumps({"action": "publish",
                                         "event": event("identity", "over.ws")}))
        error = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
        await websocket.wait_closed()
    assert error["error"] == "publish-out-of-scope" and websocket.close_code == 4403
    refused = await _stats(gateway)
    assert refused["publish-out-of-scope"] == 2 and refused["forbidden"] == 1


async def test_a_resume_replays_only_what_the_scope_allows(
        scoped_gateway: GatewayProcess) -> None:
    gateway = scoped_gateway
    async with ws_client(gateway.ws_url(token=PUBLISH_TOKEN)) as watcher:
        await gateway.publish(event("compute", "first"))
        (first,) = await ws_events(watcher, 1)
        await gateway.publish([event("identity", "missed.outside"),
                               event("compute", "missed.inside")])
        await ws_events(watcher, 2)
    async with ws_client(gateway.ws_url(["#"], since=first["id"], token=COMPUTE)) as resumed:
        await gateway.publish(event("compute", "live"))
        got = await ws_events(resumed, 2)
    assert [e["type"] for e in got] == ["missed.inside", "live"]
