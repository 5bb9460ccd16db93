"""Converting JSON values to declared Python types and back (the typed-contract core).

msgspec does the work for built-in types, ``typing`` forms, dataclasses and
``msgspec.Struct``; pydantic models, when an application uses them, go through their own
``model_validate`` / ``model_dump``.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any

import msgspec


def _is_pydantic_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and hasattr(annotation, "model_validate") \
        and hasattr(annotation, "model_json_schema")


def convert(value: Any, annotation: Any) -> Any:
    """Convert a JSON value to ``annotation``; raises msgspec.ValidationError or ValueError."""
    if _is_pydantic_model(annotation):
        return annotation.model_validate(value)
    converted = msgspec.convert(value, annotation)
    try:
        walk = _builds_dataclasses(annotation)
    except TypeError:  # an unhashable annotation: look at it each time
        walk = _mentions_dataclass(annotation, set())
    return _with_defaults(converted) if walk else converted


@functools.lru_cache(maxsize=1024)
def _builds_dataclasses(annotation: Any) -> bool:
    """Whether converting to ``annotation`` may build a dataclass (then it needs
    :func:`_with_defaults`; nothing else does, and walking a payload costs)."""
    return _mentions_dataclass(annotation, set())


def _mentions_dataclass(annotation: Any, seen: set[int]) -> bool:
    if id(annotation) in seen:
        return False
    seen.add(id(annotation))
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return True
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        try:
            hints = typing.get_type_hints(annotation)
        except Exception:  # noqa: BLE001 - unresolvable hints: walk to be safe
            return True
        return any(_mentions_dataclass(hint, seen) for hint in hints.values())
    return any(_mentions_dataclass(arg, seen) for arg in typing.get_args(annotation))


def _with_defaults(value: Any) -> Any:
    """``value`` with the defaults of its dataclasses stored on each instance.

    msgspec builds a dataclass without storing the fields left at their defaults (they
    read through to the class), and then encodes it without them: a payload converted to
    its type and sent again would lose them.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        stored = getattr(value, "__dict__", None)
        for field in dataclasses.fields(value):
            current = getattr(value, field.name)
            if stored is not None and field.name not in stored:
                object.__setattr__(value, field.name, current)
            _with_defaults(current)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _with_defaults(item)
    elif isinstance(value, dict):
        for item in value.values():
            _with_defaults(item)
    return value


def to_json_value(value: Any) -> Any:
    """The JSON form of a typed value (Structs, dataclasses, datetimes, pydantic models...)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and _is_pydantic_model(type(value)):
        return dump(mode="json")
    return msgspec.to_builtins(value)


def explain(exc: Exception) -> tuple[str, str]:
    """``(problem, JSON path)`` of a failed :func:`convert`, for error messages."""
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError) and " - at `" in text:
        problem, _, path = text.partition(" - at `")
        return problem, path.rstrip("`")
    return text, "$"
