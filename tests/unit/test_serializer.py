"""The serializer hook and its JSON-safe default."""

import dataclasses
import datetime
import decimal
import enum
import uuid

import pytest

from relaybus import JsonPayloadSerializer, NoOpSerializer
from relaybus.serializer import to_primitive


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_common_values_become_json_safe() -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    ident = uuid.UUID(int=1)
    assert to_primitive({"when": when, "id": ident, "tags": {"a"}, "pair": (1, 2),
                         "d": decimal.Decimal("1.5"), "c": Color.RED, "p": Point(1, 2),
                         "b": b"raw", 3: "int key"}) == {
        "when": "2026-01-02T03:04:05.000000", "id": str(ident), "tags": ["a"],
        "pair": [1, 2], "d": "1.5", "c": "red", "p": {"x": 1, "y": 2}, "b": "raw",
        "3": "int key"}


def test_unknown_objects_are_left_for_the_encoder_to_reject() -> None:
    thing = object()
    assert to_primitive(thing) is thing


def test_contexts_may_be_objects_with_to_dict() -> None:
    class Ctx:
        def to_dict(self) -> dict:
            return {"user": "u"}

    assert JsonPayloadSerializer().serialize_context(Ctx()) == {"user": "u"}
    assert NoOpSerializer().serialize_context(None) == {}
    with pytest.raises(TypeError, match="context"):
        NoOpSerializer().serialize_context(42)


class Level(enum.IntEnum):
    HIGH = 3


class Name(enum.StrEnum):
    ALICE = "alice"


def test_values_inside_lists_and_dicts_take_the_same_conversions() -> None:
    # the fast path for plain dicts and lists must not skip subclasses of plain types
    when = datetime.date(2026, 1, 2)
    converted = to_primitive({"l": [when, Color.RED, [Point(1, 2)], None, True, 1.5],
                              "n": Name.ALICE, "lv": Level.HIGH, 1.5: {"x": (1,)}})
    assert converted == {"l": ["2026-01-02", "red", [{"x": 1, "y": 2}], None, True, 1.5],
                         "n": Name.ALICE, "lv": 3, "1.5": {"x": [1]}}


def test_an_empty_context_is_a_new_dict_each_time() -> None:
    # the trace context is injected into it: two requests must never share one
    serializer, ctxt = JsonPayloadSerializer(), {}
    first = serializer.serialize_context(ctxt)
    assert first == {} and first is not ctxt
    assert serializer.serialize_context(ctxt) is not first
