"""The oslo-format codec shared by every transport."""

import json
import re
import uuid

import msgspec
import pytest

from relaybus import MalformedMessage
from relaybus.message import (
    DuplicateFilter,
    build_notification,
    build_reply,
    build_request,
    format_timestamp,
    new_message_id,
    new_unique_id,
    pack,
    parse_notification,
    parse_reply,
    parse_request,
    unpack,
)


def test_request_round_trip_through_the_envelope() -> None:
    message = build_request("echo", {"value": "héllo ✓"}, {"user": "admin"},
                            namespace="ns", version="1.3", msg_id="a" * 32,
                            reply_q="reply_x", call_monitor_timeout=None)
    body = pack(message)
    outer = json.loads(body)
    assert outer["oslo.version"] == "2.0"
    assert isinstance(outer["oslo.message"], str)
    request = parse_request(unpack(body))
    assert (request.method, request.args, request.namespace, request.version) == \
        ("echo", {"value": "héllo ✓"}, "ns", "1.3")
    assert request.context == {"user": "admin"}
    assert request.msg_id == "a" * 32 and request.reply_q == "reply_x"
    assert request.expects_reply
    assert re.fullmatch(r"[0-9a-f]{32}", request.unique_id or "")


@pytest.mark.parametrize("text", [
    "plain", 'quote " inside', "back\\slash", '\\"', "\\\\\"\"", "ctl \x00\x01\x1f\n\t\r\x7f",
    "u\u2028\u2029 é ✓ \U0001f600 \ufeff", '{"looks": "like json"}', "\\u0022", ""])
def test_envelope_is_the_inner_text_encoded_as_a_json_string(text: str) -> None:
    # pack() escapes the inner JSON's backslashes and quotes itself: the bytes must be
    # exactly what encoding the inner text as a JSON string gives (the wire is unchanged)
    message = {"method": text, "args": {text: [text, {"k": text}]}, "_context_" + text: text}
    inner = msgspec.json.encode(message)
    assert pack(message) == (b'{"oslo.version":"2.0","oslo.message":'
                             + msgspec.json.encode(inner.decode("utf-8")) + b"}")
    assert json.loads(json.loads(pack(message))["oslo.message"]) == message
    assert unpack(pack(message)) == message


def test_request_members_follow_oslo() -> None:
    cast = build_request("m", {}, {"k": 1})
    assert list(cast) == ["method", "args", "_unique_id", "_context_k"]
    call = build_request("m", {}, {}, msg_id="x", reply_q="q", call_monitor_timeout=5)
    assert list(call) == ["method", "args", "_msg_id", "_reply_q", "_timeout", "_unique_id"]


def test_legacy_unenveloped_message_is_accepted() -> None:
    assert parse_request(unpack(b'{"method": "m", "args": {}}')).method == "m"


@pytest.mark.parametrize("body, reason", [
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"oslo.version": "3.0", "oslo.message": "{}"}', "envelope version"),
    (b'{"oslo.version": ["2.0"], "oslo.message": "{}"}', "envelope version"),
    (b'{"oslo.version": {"v": 2}, "oslo.message": "{}"}', "envelope version"),
    (b'{"oslo.version": "2.0", "oslo.message": 5}', "must be a string"),
    (b'{"oslo.version": "2.0", "oslo.message": "[1]"}', "must be a JSON object"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_bad_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        unpack(body)


@pytest.mark.parametrize("message, reason", [
    ({"args": {}}, "method"),
    ({"method": "m", "args": []}, "args"),
    ({"method": "m", "namespace": 1}, "namespace"),
    ({"method": "m", "version": 1.0}, "version"),
    ({"method": "m", "_msg_id": "x"}, "_reply_q"),
    ({"method": "m", "_msg_id": "x", "_reply_q": "q", "_timeout": "soon"}, "_timeout"),
])
def test_bad_requests(message: dict, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        parse_request(message)


def test_reply_failure_travels_as_json_text() -> None:
    reply = build_reply("m1", failure={"class": "ValueError", "module": "builtins"})
    assert isinstance(reply["failure"], str)
    parsed = parse_reply(reply)
    assert parsed.failure == {"class": "ValueError", "module": "builtins"}
    assert parsed.ending and not parsed.is_heartbeat


def test_heartbeat_reply() -> None:
    assert parse_reply(build_reply("m1", ending=False)).is_heartbeat


def test_notification_format() -> None:
    message = build_notification("compute.host1", "compute.instance.create.end", "info",
                                 {"id": 1}, {"user": "u"})
    assert list(message)[:7] == ["message_id", "publisher_id", "event_type", "priority",
                                 "payload", "timestamp", "_unique_id"]
    assert message["priority"] == "INFO"
    assert re.fullmatch(r"[0-9a-f-]{36}", message["message_id"])
    parsed = parse_notification(unpack(pack(message)))
    assert parsed.priority == "info" and parsed.context == {"user": "u"}
    assert parsed.metadata == {"message_id": message["message_id"],
                               "timestamp": message["timestamp"]}


def test_timestamp_is_oslo_style() -> None:
    import datetime

    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
    assert format_timestamp(moment) == "2026-01-02 03:04:05.000006"
    assert format_timestamp(moment.replace(microsecond=0)) == "2026-01-02 03:04:05"


def test_the_current_timestamp_is_what_datetime_now_gives(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime
    import time

    before = str(datetime.datetime.now(datetime.UTC).replace(tzinfo=None))
    now = format_timestamp()
    after = str(datetime.datetime.now(datetime.UTC).replace(tzinfo=None))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?", now)
    assert before <= now <= after
    # the formatted second is kept, and renewed when the second changes
    for nanoseconds, text in ((1767322800_000000000, "2026-01-02 03:00:00"),
                              (1767322800_123456789, "2026-01-02 03:00:00.123456"),
                              (1767322801_000001999, "2026-01-02 03:00:01.000001"),
                              (1767322800_999999999, "2026-01-02 03:00:00.999999")):
        monkeypatch.setattr(time, "time_ns", lambda n=nanoseconds: n)
        assert format_timestamp() == text
        assert text == str(datetime.datetime.fromtimestamp(nanoseconds // 1000 / 1e6,
                                                            datetime.UTC).replace(tzinfo=None))


def test_notification_with_unknown_priority_is_malformed() -> None:
    message = build_notification("p", "e", "info", {}, {})
    message["priority"] = "LOUD"
    with pytest.raises(MalformedMessage, match="priority"):
        parse_notification(message)


def test_unencodable_values_raise_type_error() -> None:
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        pack({"x": object()})


def test_duplicate_filter_remembers_the_last_16() -> None:
    seen = DuplicateFilter()
    assert not seen.is_duplicate("a")
    assert seen.is_duplicate("a")
    for n in range(16):
        seen.is_duplicate(str(n))
    assert not seen.is_duplicate("a")
    assert not seen.is_duplicate(None)


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    depth = 100_000
    with pytest.raises(MalformedMessage, match="nested too deeply"):
        unpack(b"[" * depth + b"]" * depth)
    nested: list = []
    for _ in range(depth):
        nested = [nested]
    with pytest.raises(TypeError, match="nested too deeply"):
        pack({"x": nested})


def test_ids_are_random_hex_and_uuid4_text() -> None:
    unique = {new_unique_id() for _ in range(1000)}
    assert len(unique) == 1000 and all(re.fullmatch(r"[0-9a-f]{32}", u) for u in unique)
    for _ in range(1000):
        text = new_message_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
