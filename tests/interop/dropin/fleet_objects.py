"""The fleet's request context, its one versioned object and the serializer that carries
them, the way nova's ``RequestContext`` and ``NovaObjectSerializer`` do."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from fleet_messaging import messaging


@dataclass(frozen=True)
class Context(Mapping[str, Any]):
    """What a request carries from service to service."""

    user_id: str
    project_id: str
    request_id: str
    auth_token: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Context:
        return cls(values["user_id"], values["project_id"], values["request_id"],
                   values.get("auth_token"))

    # a read-only mapping of its fields, as NotificationFilter(context=...) reads it
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def redacted_copy(self) -> Context:
        """What a notification may carry: oslo.messaging's Notifier sends this copy."""
        return replace(self, auth_token=None)


@dataclass(frozen=True)
class Flavor:
    """A versioned object: serialized as a tagged primitive, rebuilt on the other side."""

    name: str
    vcpus: int
    memory_mb: int


class FleetSerializer(messaging.Serializer):
    """Flavors travel as ``{"fleet_object": "Flavor", ...}``; contexts as dicts."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        if isinstance(entity, Flavor):
            return {"fleet_object": "Flavor", "fleet_data": asdict(entity)}
        if isinstance(entity, (list, tuple)):
            return [self.serialize_entity(ctxt, item) for item in entity]
        if isinstance(entity, dict):
            return {key: self.serialize_entity(ctxt, value) for key, value in entity.items()}
        return entity

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        if isinstance(entity, dict) and entity.get("fleet_object") == "Flavor":
            return Flavor(**entity["fleet_data"])
        if isinstance(entity, list):
            return [self.deserialize_entity(ctxt, item) for item in entity]
        if isinstance(entity, dict):
            return {key: self.deserialize_entity(ctxt, value) for key, value in entity.items()}
        return entity

    def serialize_context(self, ctxt: Context | dict[str, Any]) -> dict[str, Any]:
        # the Notifier passes {} for a context that could not be redacted
        return ctxt.to_dict() if isinstance(ctxt, Context) else dict(ctxt)

    def deserialize_context(self, ctxt: dict[str, Any]) -> Context | dict[str, Any]:
        return Context.from_dict(ctxt) if "user_id" in ctxt else ctxt
