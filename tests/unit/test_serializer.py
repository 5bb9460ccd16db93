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
