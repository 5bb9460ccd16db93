"""JSON Schemas for endpoint methods and payloads, from their type hints."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import msgspec

from relaybus.rpc.dispatcher import DefaultRPCAccessPolicy, RPCAccessPolicy
from relaybus.rpc.signature import MethodSignature, signature_of

REF_TEMPLATE = "#/components/schemas/{name}"
ANY: dict[str, Any] = {}


def endpoint_methods(endpoint: object, policy: RPCAccessPolicy | None = None
                     ) -> Iterator[tuple[str, MethodSignature]]:
    """The remotely callable methods of an endpoint (object or class), with their contracts."""
    policy = policy or DefaultRPCAccessPolicy()
    for name, member in inspect.getmembers(endpoint):
        if name.startswith("_") or isinstance(member, type) or not callable(member):
            continue
        if policy.is_allowed(endpoint, name, member):
            yield name, signature_of(member)


def _is_pydantic_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and hasattr(annotation, "model_json_schema")


class SchemaSet:
    """Collects the types a document uses; renders each as a schema with shared components.

    Call :meth:`add` for every type first, then :meth:`schema` to get each one's schema,
    and :attr:`components` for the shared definitions.
    """

    def __init__(self) -> None:
        self._types: list[Any] = []
        self._schemas: dict[int, dict[str, Any]] | None = None
        self.components: dict[str, Any] = {}

    def add(self, annotation: Any) -> int:
        """Register a type; returns the handle :meth:`schema` takes."""
        self._types.append(annotation)
        self._schemas = None
        return len(self._types) - 1

    def _render(self) -> dict[int, dict[str, Any]]:
        plain = [(i, t) for i, t in enumerate(self._types)
                 if t is not inspect.Parameter.empty and not _is_pydantic_model(t)]
        schemas, components = msgspec.json.schema_components(
            [t for _, t in plain], ref_template=REF_TEMPLATE)
        rendered = {i: s for (i, _), s in zip(plain, schemas, strict=True)}
        self.components = dict(components)
        for i, annotation in enumerate(self._types):
            if annotation is inspect.Parameter.empty:
                rendered[i] = dict(ANY)
            elif _is_pydantic_model(annotation):
                schema = annotation.model_json_schema(
                    ref_template=REF_TEMPLATE.replace("{name}", "{model}"))
                self.components.update(schema.pop("$defs", {}))
                self.components[annotation.__name__] = schema
                rendered[i] = {"$ref": REF_TEMPLATE.format(name=annotation.__name__)}
        return rendered

    def schema(self, handle: int) -> dict[str, Any]:
        if self._schemas is None:
            self._schemas = self._render()
        return self._schemas[handle]


def arguments_schema(signature: MethodSignature, schemas: SchemaSet) -> Any:
    """A deferred object schema for a method's arguments (resolve with :func:`resolve`)."""
    properties = {p.name: schemas.add(p.annotation) for p in signature.parameters}
    required = [p.name for p in signature.parameters if p.required]
    return ("object", properties, required, signature.accepts_any_keyword)


def resolve(deferred: Any, schemas: SchemaSet) -> dict[str, Any]:
    """Turn what :func:`arguments_schema` returned into a JSON Schema object."""
    _, properties, required, open_ended = deferred
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: schemas.schema(h) for name, h in properties.items()},
        "additionalProperties": open_ended,
    }
    if required:
        schema["required"] = required
    return schema
