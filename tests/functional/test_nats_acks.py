"""JetStream publishes acknowledged through relaybus's own inbox (relaybus.drivers.nats.acks),
on a real NATS server: each answer JetStream can give ends the publish the way
``JetStreamContext.publish`` would have."""

from __future__ import annotations

import asyncio
import types
import uuid
from collections.abc import AsyncIterator

import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from test_nats_support import URL, raw_client, require_nats

from relaybus.drivers.nats.acks import AckedPublisher, check_ack

pytestmark = pytest.mark.broker


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    require_nats()
    async with raw_client(URL) as nc:
        yield nc


@pytest.fixture
async def stream(client: Client) -> AsyncIterator[str]:
    """A stream capturing ``<name>.>``, at most two messages, refusing the third."""
    name = f"acks_{uuid.uuid4().hex[:10]}"
    jsm = client.jsm()
    await jsm.add_stream(api.StreamConfig(name=name, subjects=[f"{name}.>"], max_msgs=2,
                                          discard=api.DiscardPolicy.NEW))
    yield name
    await jsm.delete_stream(name)


def publisher(client: Client) -> AckedPublisher:
    return AckedPublisher(types.SimpleNamespace(client=client))  # type: ignore[arg-type]


async def test_a_stored_message_is_acknowledged_and_a_copy_is_stored_once(
        client: Client, stream: str) -> None:
    acks = publisher(client)
    headers = {"Nats-Msg-Id": "one"}
    await acks.publish(f"{stream}.a", b"first", headers, 5.0)
    await acks.publish(f"{stream}.a", b"first again", headers, 5.0)  # a resent copy
    info = await client.jsm().stream_info(stream)
    assert info.state.messages == 1
    await acks.close()


async def test_a_refusing_stream_raises_its_api_error(client: Client, stream: str) -> None:
    acks = publisher(client)
    await acks.publish(f"{stream}.a", b"1", None, 5.0)
    await acks.publish(f"{stream}.a", b"2", None, 5.0)
    with pytest.raises(nats.js.errors.APIError) as refused:
        await acks.publish(f"{stream}.a", b"3", None, 5.0)  # max_msgs, discard new
    assert refused.value.err_code == 10077  # maximum messages exceeded
    await acks.close()


async def test_no_stream_is_no_stream_response(client: Client) -> None:
    acks = publisher(client)
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await acks.publish(f"acks_nobody_{uuid.uuid4().hex}", b"x", None, 5.0)
    await acks.close()


async def test_a_silent_responder_times_out(client: Client) -> None:
    subject = f"acks_silent_{uuid.uuid4().hex}"
    received = asyncio.Event()

    async def silent(msg: Msg) -> None:
        received.set()

    await client.subscribe(subject, cb=silent)
    await client.flush()
    acks = publisher(client)
    with pytest.raises(nats.errors.TimeoutError):
        await acks.publish(subject, b"x", None, 0.2)
    assert received.is_set()
    assert not acks._waiting  # the timed-out publish is forgotten
    await acks.close()


async def test_publishes_time_out_by_their_own_deadlines_on_one_timer(client: Client,
                                                                      stream: str) -> None:
    subject = f"acks_silent_{uuid.uuid4().hex}"

    async def silent(msg: Msg) -> None:
        pass

    await client.subscribe(subject, cb=silent)
    await client.flush()
    acks = publisher(client)
    ended: list[str] = []

    async def publish(name: str, timeout: float) -> None:
        try:
            await acks.publish(subject, name.encode(), None, timeout)
        except nats.errors.TimeoutError:
            ended.append(name)

    # a later, longer publish first, then a shorter one: the timer is re-armed earlier
    slow = asyncio.ensure_future(publish("slow", 0.6))
    await asyncio.sleep(0.05)
    fast = asyncio.ensure_future(publish("fast", 0.1))
    for n in range(200):  # acknowledged publishes leave finished entries behind
        await acks.publish(f"{stream}.a", b"x", {"Nats-Msg-Id": f"m{n % 2}"}, 5.0)
    assert len(acks._deadlines) <= 2 * len(acks._waiting) + 64 + 1  # swept as it went
    async with asyncio.timeout(5):
        await asyncio.gather(slow, fast)
    assert ended == ["fast", "slow"]
    assert not acks._waiting and not acks._deadlines and acks._timer is None
    await acks.close()


async def test_close_ends_a_waiting_publish(client: Client) -> None:
    subject = f"acks_silent_{uuid.uuid4().hex}"
    received = asyncio.Event()

    async def silent(msg: Msg) -> None:
        received.set()

    await client.subscribe(subject, cb=silent)
    await client.flush()
    acks = publisher(client)
    waiting = asyncio.ensure_future(acks.publish(subject, b"x", None, 30.0))
    async with asyncio.timeout(5):
        await received.wait()
    await acks.close()
    with pytest.raises(nats.errors.ConnectionClosedError):
        await waiting


def answer(data: bytes, headers: dict[str, str] | None = None) -> Msg:
    return Msg(_client=None, subject="_INBOX.x.1", data=data, headers=headers)  # type: ignore[arg-type]


def test_check_ack_reads_every_answer_as_nats_py_does() -> None:
    check_ack(answer(b'{"stream":"S","seq":1}'))
    check_ack(answer(b'{"stream":"S","seq":1,"duplicate":true}'))
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        check_ack(answer(b"", {"Status": "503"}))
    with pytest.raises(nats.js.errors.ServiceUnavailableError):
        check_ack(answer(b'{"error":{"code":503,"err_code":10008,"description":"down"}}'))
    with pytest.raises(nats.js.errors.BadRequestError):
        check_ack(answer(b'{"error":{"code":400,"err_code":10060,"description":"bad"}}'))
    for junk in (b"{bad", b"[1]", b'{"seq":1}', b'{"error":"text"}'):
        with pytest.raises(nats.js.errors.APIError):
            check_ack(answer(junk))
    with pytest.raises(nats.js.errors.APIError) as other:
        check_ack(answer(b"", {"Status": "408", "Description": "Request Timeout"}))
    assert other.value.code == 408 and other.value.description == "Request Timeout"
