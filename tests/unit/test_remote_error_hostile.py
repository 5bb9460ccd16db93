"""Failure replies from a hostile or sloppy peer: odd shapes, terminal control characters.

A real peer on memory:// (a raw consumer of the server queue, not a relaybus server)
answers calls with crafted failures, so the whole client path is exercised: decode, rebuild,
the exception's text, its notes and the log line a caller writes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from collections.abc import AsyncIterator
from typing import Any

import pytest

import relaybus
from relaybus import RemoteError, Target
from relaybus.drivers.memory.broker import DEFAULT_EXCHANGE, broker_named
from relaybus.message import build_reply, pack, parse_request, unpack
from relaybus.rpc.remote_errors import deserialize_exception, escape_controls
from relaybus.testing.behaviour import WAIT

# Anything a terminal would act on: ESC (CSI/OSC), other C0 but \n and \t, DEL, C1, bidi.
_RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE = ("boom \x1b[2J\x1b]0;owned\x07 \r\x08\x00 \x9b31m \u202e\x7f end")


def _every_text(exc: BaseException) -> str:
    """Every string a user or a log handler can see of ``exc``."""
    parts = [str(exc), repr(exc), *getattr(exc, "__notes__", [])]
    parts += traceback.format_exception(exc)
    for attr in ("remote_message", "remote_traceback", "value", "exc_type", "module"):
        value = getattr(exc, attr, None)
        if value is not None:
            parts.append(str(value))
    parts += [str(line) for line in getattr(exc, "remote_traceback_lines", [])]
    parts += [str(line) for line in getattr(exc, "traceback", None) or []
              if isinstance(exc, RemoteError)]
    return "\n".join(parts)


def _assert_no_controls(exc: BaseException) -> None:
    seen = _every_text(exc)
    assert not _RAW_CONTROL.search(seen), repr(_RAW_CONTROL.findall(seen))


@pytest.mark.parametrize("tb", [
    42, 4.5, True, {"frame": "x"}, [1, None, {"a": [2]}], [["nested", ["deep"]]],
    "Traceback (most recent call last):\n  File \"x\"\nValueError: m\n", None, [],
])
def test_any_tb_shape_still_gives_the_remote_message(tb: Any) -> None:
    exc = deserialize_exception({"class": "ValueError", "module": "builtins",
                                 "message": "the remote message", "tb": tb,
                                 "args": ["the remote message"]})
    assert isinstance(exc, ValueError) and str(exc) == "the remote message"
    assert isinstance(exc.remote_traceback, str)  # type: ignore[attr-defined]
    assert all(isinstance(line, str)
               for line in exc.remote_traceback_lines)  # type: ignore[attr-defined]
    if tb not in (None, [], ""):
        assert exc.remote_traceback  # type: ignore[attr-defined]


@pytest.mark.parametrize("failure", [
    {"class": "ValueError", "module": "builtins", "message": "the remote message"},
    {"class": "ValueError", "module": "builtins", "message": "the remote message",
     "args": []},
    {"class": "ValueError", "module": "builtins", "message": "the remote message",
     "args": "not a list"},
    {"class": "ValueError", "module": "builtins", "message": "the remote message",
     "args": {"a": 1}},
    {"class": "ValueError", "module": "builtins", "message": "the remote message",
     "args": None, "kwargs": None},
])
def test_missing_or_empty_args_still_carry_the_message(failure: dict[str, Any]) -> None:
    exc = deserialize_exception(failure)
    assert isinstance(exc, ValueError) and str(exc) == "the remote message"


@pytest.mark.parametrize("failure", [
    "a string", 7, None, [1, 2],
    {"class": 5, "message": {"nested": ["junk"]}, "tb": {"x": 1}},
    {"class": "Nope", "module": "not.allowed", "message": 3.5, "tb": 9, "args": 1},
])
def test_a_failure_of_any_shape_never_raises_while_read(failure: Any) -> None:
    exc = deserialize_exception(failure)
    assert isinstance(exc, BaseException)
    str(exc)


def test_absurd_nesting_does_not_break_the_client() -> None:
    deep: Any = "core"
    for _ in range(5000):
        deep = [deep]
    exc = deserialize_exception({"class": "ValueError", "module": "builtins",
                                 "message": "m", "tb": deep, "args": deep})
    assert isinstance(exc, BaseException) and "m" in str(exc)


@pytest.mark.parametrize("module,name", [
    ("builtins", "ValueError"), ("builtins", "KeyError"), ("not.allowed", "Evil"),
    ("oslo_messaging.rpc.dispatcher", "NoSuchMethod"),
])
def test_control_characters_are_escaped_everywhere(module: str, name: str) -> None:
    exc = deserialize_exception({
        "class": name, "module": module, "message": HOSTILE,
        "tb": ["Traceback:\n", f"  {HOSTILE}\n", {"junk": HOSTILE}, HOSTILE],
        "args": [HOSTILE], "kwargs": {}})
    _assert_no_controls(exc)
    assert "\\x1b[2J" in _every_text(exc)  # escaped, not removed: the text stays readable


def test_newline_and_tab_are_kept() -> None:
    assert escape_controls("a\n\tb\x1bc\u202ed") == "a\n\tb\\x1bc\\u202ed"


def test_remote_traceback_is_a_string_and_lines_stay_available() -> None:
    lines = ["Traceback (most recent call last):\n", "  File \"s.py\", line 1\n",
             "ValueError: m"]
    exc = deserialize_exception({"class": "ValueError", "module": "builtins",
                                 "message": "m", "tb": lines, "args": ["m"]})
    assert exc.remote_traceback == "".join(lines) + "\n"  # type: ignore[attr-defined]
    assert exc.remote_traceback_lines == lines  # type: ignore[attr-defined]


# -- end to end, against a raw peer on memory:// --------------------------------------

BROKER = "hostile_failures"


@pytest.fixture
async def hostile_peer() -> AsyncIterator[list[dict[str, Any]]]:
    """Answers every call on topic ``hostile`` with the next crafted failure."""
    failures: list[dict[str, Any]] = []
    broker = broker_named(BROKER)

    async def answer(body: bytes) -> None:
        request = parse_request(unpack(body))
        assert request.msg_id is not None and request.reply_q is not None
        failure = failures.pop(0)
        reply = build_reply(request.msg_id)
        reply["failure"] = failure  # raw: whatever shape the test wants on the wire
        broker.publish(DEFAULT_EXCHANGE, request.reply_q, pack(reply))

    async with await relaybus.connect(f"memory://{BROKER}"):
        broker.declare_queue("hostile", auto_delete=True)
        broker.bind("hostile", "openstack", "hostile")
        consumer = broker.consume("hostile", answer, "test.hostile_peer")
        try:
            yield failures
        finally:
            await consumer.stop()


@pytest.mark.parametrize("failure", [
    {"class": "ValueError", "module": "builtins", "message": HOSTILE, "tb": 12345},
    {"class": "ValueError", "module": "builtins", "message": HOSTILE,
     "tb": {"tb": [HOSTILE]}, "args": []},
    {"class": "RuntimeError", "module": "builtins", "message": HOSTILE, "tb": HOSTILE},
    {"class": "Evil", "module": "evil.module", "message": HOSTILE,
     "tb": [HOSTILE, [HOSTILE]], "args": "x"},
    '{"class": "KeyError", "module": "builtins", "message": "' + "\\u001b[31m"
    + '", "tb": [3, 4]}',
])
async def test_hostile_failure_reply_becomes_a_clean_exception(
        hostile_peer: list[Any], failure: Any, caplog: pytest.LogCaptureFixture) -> None:
    hostile_peer.append(failure)
    async with await relaybus.connect(f"memory://{BROKER}") as bus:
        client = bus.rpc_client(Target(topic="hostile"), timeout=WAIT)
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(client.call({}, "anything"), WAIT)
    exc = info.value
    assert isinstance(exc, (ValueError, RuntimeError, KeyError, RemoteError))
    _assert_no_controls(exc)
    if not isinstance(failure, str):
        assert escape_controls(HOSTILE) in str(exc)
    log = logging.getLogger("test.hostile")
    with caplog.at_level(logging.ERROR, logger="test.hostile"):
        log.error("call failed", exc_info=exc)
    assert not _RAW_CONTROL.search(caplog.text)
