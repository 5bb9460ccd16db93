"""The serializer hook: turn application objects into JSON-safe values and back.

A serializer sits between the caller and the wire, on both sides: clients serialize
arguments and contexts before sending, servers deserialize them before dispatch, and the
reverse for results. The default, :class:`JsonPayloadSerializer`, makes common Python
values JSON-safe the way oslo.messaging does (datetime to ISO text, UUID to text, sets and
tuples to lists) and leaves anything else for the encoder to reject with ``TypeError``.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime
import decimal
import enum
import uuid
from collections.abc import Mapping
from typing import Any


class Serializer(abc.ABC):
    """Converts entities and contexts to and from their on-the-wire form."""

    @abc.abstractmethod
    def serialize_entity(self, ctxt: Mapping[str, Any], entity: Any) -> Any:
        """Return the JSON-safe form of an argument, result or payload."""

    @abc.abstractmethod
    def deserialize_entity(self, ctxt: Mapping[str, Any], entity: Any) -> Any:
        """Rebuild an application object from its JSON-safe form."""

    @abc.abstractmethod
    def serialize_context(self, ctxt: Any) -> dict[str, Any]:
        """Return the request context as a flat JSON-safe mapping."""

    @abc.abstractmethod
    def deserialize_context(self, ctxt: dict[str, Any]) -> Any:
        """Rebuild the request context object a server's endpoints receive."""


class NoOpSerializer(Serializer):
    """Passes everything through unchanged; contexts must already be mappings."""

    def serialize_entity(self, ctxt: Mapping[str, Any], entity: Any) -> Any:
        return entity

    def deserialize_entity(self, ctxt: Mapping[str, Any], entity: Any) -> Any:
        return entity

    def serialize_context(self, ctxt: Any) -> dict[str, Any]:
        return _context_to_dict(ctxt)

    def deserialize_context(self, ctxt: dict[str, Any]) -> Any:
        return ctxt


def _context_to_dict(ctxt: Any) -> dict[str, Any]:
    if ctxt is None:
        return {}
    if isinstance(ctxt, Mapping):
        return dict(ctxt)
    to_dict = getattr(ctxt, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    raise TypeError(
        f"context must be a mapping or have a to_dict() method, got {type(ctxt).__name__}"
    )


#: types that are already JSON values; ``type(v) in _PLAIN`` is the cheapest test there is,
#: and subclasses (an IntEnum, a str Enum...) still take the general path below
_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_primitive(value: Any) -> Any:
    """Convert a value to plain JSON types where there is an obvious way to.

    Unknown objects are returned unchanged so that the encoder rejects them with a
    ``TypeError`` that names their type.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:  # the common containers first, without isinstance chains
        return {k if type(k) is str else _key(k): v if type(v) in _PLAIN else to_primitive(v)
                for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _PLAIN else to_primitive(v) for v in value]
    return _convert(value)


def _convert(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {_key(k): to_primitive(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_primitive(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_primitive(value.value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_primitive(dataclasses.asdict(value))
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_primitive(to_dict())
    return value


def _key(key: Any) -> Any:
    return key if isinstance(key, str) else str(key) if isinstance(key, (int, float)) else key


class JsonPayloadSerializer(NoOpSerializer):
    """The default: common Python values become JSON-safe, as oslo.messaging sends them."""

    def serialize_entity(self, ctxt: Mapping[str, Any], entity: Any) -> Any:
        return to_primitive(entity)

    def serialize_context(self, ctxt: Any) -> dict[str, Any]:
        if not ctxt and type(ctxt) is dict:
            return {}
        context: dict[str, Any] = to_primitive(_context_to_dict(ctxt))
        return context
