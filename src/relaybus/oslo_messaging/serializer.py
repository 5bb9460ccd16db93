"""Serializers with oslo.messaging's names and behaviour, and the bridge to relaybus's.

oslo's serializers may return a context object from ``serialize_context`` (oslo turns it
into a dict with ``to_dict()`` when sending) and leave values that JSON cannot carry to
the encoder's conversions; :class:`_Bridge` does both before relaybus encodes anything.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import relaybus
from relaybus.serializer import to_primitive

__all__ = ["JsonPayloadSerializer", "NoOpSerializer", "Serializer"]


class Serializer(relaybus.Serializer, metaclass=abc.ABCMeta):
    """Converts entities and contexts to and from their wire form (oslo's interface)."""


class NoOpSerializer(Serializer):
    """Passes entities and contexts through unchanged."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def serialize_context(self, ctxt: Any) -> Any:
        return ctxt

    def deserialize_context(self, ctxt: Any) -> Any:
        return ctxt


class JsonPayloadSerializer(NoOpSerializer):
    """Turns entities into JSON-safe primitives (objects through their ``to_dict()``)."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return to_primitive(entity)


def _context_dict(ctxt: Any) -> dict[str, Any]:
    if ctxt is None:
        return {}
    if isinstance(ctxt, Mapping):
        return {str(k): to_primitive(v) for k, v in ctxt.items()}
    to_dict = getattr(ctxt, "to_dict", None)
    if callable(to_dict):
        return {str(k): to_primitive(v) for k, v in to_dict().items()}
    raise TypeError(f"a request context must be a dict or have to_dict(), "
                    f"got {type(ctxt).__name__}")


class _Bridge(relaybus.Serializer):
    """An oslo-style serializer as relaybus's client, server and notifier call it."""

    def __init__(self, serializer: Any | None) -> None:
        self.oslo = serializer or NoOpSerializer()

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return to_primitive(self.oslo.serialize_entity(ctxt, entity))

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return self.oslo.deserialize_entity(ctxt, entity)

    def serialize_context(self, ctxt: Any) -> dict[str, Any]:
        return _context_dict(self.oslo.serialize_context(ctxt))

    def deserialize_context(self, ctxt: dict[str, Any]) -> Any:
        return self.oslo.deserialize_context(ctxt)


def bridge(serializer: Any | None) -> relaybus.Serializer:
    """The relaybus serializer running an oslo-style one."""
    return _Bridge(serializer)
