"""The shared request intake (transport/intake.py): size, shape, reply address, logging."""

from __future__ import annotations

import logging

import pytest

from relaybus.drivers.nats.driver import inbox_rule
from relaybus.message import DuplicateFilter, Request, build_request, encode_json, pack, unpack
from relaybus.transport.intake import AMQP_REPLY_QUEUE, Intake, Refused

HEX = "0123456789abcdef" * 2


def call(reply_q: object, **members: object) -> bytes:
    message = build_request("echo", {"value": 1}, {}, msg_id=HEX, reply_q="x")
    message["_reply_q"] = reply_q
    message.update(members)
    return pack(message)


def test_an_oversized_body_is_refused_before_it_is_decoded() -> None:
    intake = Intake("t", 100, AMQP_REPLY_QUEUE)
    outcome = intake.request(b"{" * 101, "q")  # not JSON either: size is checked first
    assert isinstance(outcome, Refused) and outcome.reason == "too-large"
    assert outcome.answer is None and intake.refused == {"too-large": 1}


def test_the_size_limit_holds_at_its_edge_for_announced_sizes_and_for_replies() -> None:
    body = call("reply_" + HEX)
    intake = Intake("t", len(body), AMQP_REPLY_QUEUE)
    assert isinstance(intake.request(body, "q"), Request)  # exactly at the limit: taken
    announced = intake.request(body, "q", size=len(body) + 1)  # the transport saw more
    assert isinstance(announced, Refused) and announced.reason == "too-large"
    reply = pack({"result": "x" * 50, "failure": None, "ending": True, "_msg_id": HEX})
    replies = Intake("t", len(reply), AMQP_REPLY_QUEUE)
    assert replies.reply(reply, "r") is not None
    assert Intake("t", len(reply) - 1, AMQP_REPLY_QUEUE).reply(reply, "r") is None
    assert replies.reply(reply, "r", size=len(reply) + 1) is None
    assert replies.refused == {"too-large": 1}


@pytest.mark.parametrize("address", ["reply_" + HEX, ])
def test_a_reply_queue_by_its_naming_rule_is_accepted(address: str) -> None:
    outcome = Intake("t", 10_000, AMQP_REPLY_QUEUE).request(call(address), "q")
    assert isinstance(outcome, Request) and outcome.reply_q == address


@pytest.mark.parametrize("address", ["compute", "reply_" + HEX.upper(), "reply_" + HEX + "0",
                                     "reply_" + HEX[:-1], "", "reply_" + HEX + "\n",
                                     "x" * 300, ["reply_" + HEX], 7])
def test_any_other_amqp_reply_address_is_refused(address: object) -> None:
    intake = Intake("t", 10_000, AMQP_REPLY_QUEUE)
    outcome = intake.request(call(address), "q")
    if not isinstance(address, str):  # not even a string: the request is malformed
        assert isinstance(outcome, Refused) and outcome.reason == "malformed"
        return
    assert isinstance(outcome, Refused) and outcome.reason == "reply-address"
    assert outcome.answer is None  # nothing is ever sent to such an address


@pytest.mark.parametrize("address, allowed", [
    ("_INBOX.abc." + HEX, True), ("_INBOX.abc", True), ("_INBOX.a-b_c.d.e", True),
    ("$JS.API.STREAM.PURGE.s", False), ("$JS.API.CONSUMER.DELETE.s.c", False),
    ("_INBOX.*", False), ("_INBOX.>", False), ("_INBOX", False), ("_INBOX.", False),
    ("_INBOX..x", False), ("relaybus.openstack.rpc.compute", False), ("_INBOXES.x", False),
    ("_INBOX.a.b.c.d", False), ("_INBOX.a b", False),
])
def test_the_nats_rule_allows_inbox_subjects_only(address: str, allowed: bool) -> None:
    assert inbox_rule("_INBOX").allows(address) is allowed


def test_the_transport_level_reply_address_is_checked_too() -> None:
    intake = Intake("nats", 10_000, inbox_rule("_INBOX"))
    cast = pack(build_request("echo", {}, {}))
    refused = intake.request(cast, "s", reply_to="$JS.API.STREAM.PURGE.kept")
    assert isinstance(refused, Refused) and refused.reason == "reply-address"
    assert isinstance(intake.request(cast, "s", reply_to="_INBOX.abc." + HEX), Request)


def test_an_address_that_passed_once_lets_no_other_address_through() -> None:
    """The intake remembers the last reply address that passed, so a caller's next call
    is not matched again; a different address, or a transport-level one beside it, still
    goes through the rule."""
    intake = Intake("t", 10_000, AMQP_REPLY_QUEUE)
    good = "reply_" + HEX
    for _ in range(2):
        assert isinstance(intake.request(call(good), "q"), Request)
    for bad in ("reply_" + HEX.upper(), good + "0", "compute"):
        refused = intake.request(call(bad), "q")
        assert isinstance(refused, Refused) and refused.reason == "reply-address"
    assert isinstance(intake.request(call(good), "q"), Request)
    nats = Intake("nats", 10_000, inbox_rule("_INBOX"))
    inbox = "_INBOX.abc." + HEX
    assert isinstance(nats.request(call(inbox), "s", reply_to=inbox), Request)
    assert isinstance(nats.request(call(inbox), "s", reply_to=inbox), Request)
    for reply_to in ("$JS.API.STREAM.PURGE.kept", "_INBOX.>"):
        refused = nats.request(call(inbox), "s", reply_to=reply_to)
        assert isinstance(refused, Refused) and refused.reason == "reply-address"
    refused = nats.request(call("$JS.API.STREAM.PURGE.kept"), "s", reply_to=inbox)
    assert isinstance(refused, Refused) and refused.reason == "reply-address"
    assert nats.refused == {"reply-address": 3} and intake.refused == {"reply-address": 3}


def test_a_cast_never_replies_so_its_reply_q_is_not_checked() -> None:
    message = build_request("echo", {}, {})
    message["_reply_q"] = ["not", "a", "string"]
    assert isinstance(Intake("t", 10_000, AMQP_REPLY_QUEUE).request(pack(message), "q"),
                      Request)


def test_a_malformed_call_is_answered_only_at_an_acceptable_address() -> None:
    intake = Intake("t", 10_000, AMQP_REPLY_QUEUE)
    good = intake.request(call("reply_" + HEX, method=None), "q")
    assert isinstance(good, Refused) and good.answer is not None
    address, body = good.answer
    assert address == "reply_" + HEX
    assert "MalformedMessage" in unpack(body)["failure"]
    bad = intake.request(call("compute", method=None), "q")
    assert isinstance(bad, Refused) and bad.reason == "malformed" and bad.answer is None


def test_refusals_are_counted_every_time_and_logged_once_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    intake = Intake("t", 10_000, AMQP_REPLY_QUEUE)
    with caplog.at_level(logging.WARNING, logger="relaybus.transport.intake"):
        for _ in range(1000):
            intake.request(b"not json", "q")
            intake.request(call("compute"), "q")
    assert intake.refused == {"malformed": 1000, "reply-address": 1000}
    assert len(caplog.records) == 2  # one line per reason, not 2,000


def test_duplicates_are_told_apart_per_filter() -> None:
    intake = Intake("t", 10_000, AMQP_REPLY_QUEUE)
    request = intake.request(encode_json({"method": "echo", "_unique_id": "u"}), "q")
    assert isinstance(request, Request)
    duplicates = DuplicateFilter()
    assert not intake.is_duplicate(request, duplicates, "q")
    assert intake.is_duplicate(request, duplicates, "q")
    assert not intake.is_duplicate(request, DuplicateFilter(), "q")
