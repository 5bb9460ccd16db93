"""Example values from JSON Schemas, for the example calls of an AsyncAPI document."""

from __future__ import annotations

from typing import Any

_MAX_DEPTH = 6
_BY_FORMAT = {"uuid": "6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
              "date-time": "2026-01-01T12:00:00Z", "date": "2026-01-01", "email": "a@b.example"}
_BY_TYPE: dict[str, Any] = {"string": "text", "integer": 1, "number": 1.5, "boolean": True,
                            "null": None}


def example(schema: Any, components: dict[str, Any], depth: int = 0) -> Any:
    """A value that fits ``schema`` (``$ref``s resolved in ``components``), for reading."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        return example(components.get(ref.rsplit("/", 1)[1]), components, depth + 1)
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [s for s in schema.get(key, []) if s.get("type") != "null"]
        if options:
            return example(options[0], components, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: example(sub, components, depth + 1)
                for name, sub in properties.items()}
    if kind == "array":
        items = schema.get("items")
        return [] if items is None else [example(items, components, depth + 1)]
    if kind == "string" and schema.get("format") in _BY_FORMAT:
        return _BY_FORMAT[schema["format"]]
    if kind == "integer" and "minimum" in schema:
        return schema["minimum"]
    return _BY_TYPE.get(kind) if isinstance(kind, str) else None
