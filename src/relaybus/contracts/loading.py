"""Finding a service from a ``MODULE:OBJECT`` reference, as the CLI commands take it."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

from relaybus.contracts.schema import endpoint_methods
from relaybus.contracts.service import Service
from relaybus.target import Target


class LoadError(Exception):
    """A reference that does not lead to something usable; the text is one line for users."""


def load_object(reference: str) -> Any:
    """Import ``module:attribute`` (the current directory is importable, as with python -m)."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise LoadError(f"expected MODULE:OBJECT (e.g. myapp.service:compute), got {reference!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise LoadError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") \
            from exc
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise LoadError(f"module {module_name!r} has no attribute {attribute!r}") from None
    return obj


def as_service(obj: Any, topic: str | None = None, server: str | None = None) -> Service:
    """Make a Service of a Service, an endpoint instance or an endpoint class.

    Raises:
        LoadError: an endpoint without ``topic``, or an object with no callable methods.
    """
    if isinstance(obj, Service):
        if topic or server:
            changes = {k: v for k, v in (("topic", topic), ("server", server)) if v}
            return Service(obj.name, obj.target.replace(**changes), obj.endpoints, obj.emits,
                           obj.description, obj.notification_topic)
        return obj
    if callable(obj) and not inspect.isclass(obj) and not list(endpoint_methods(obj)):
        raise LoadError(f"{obj!r} is a function, not a Service or an endpoint")
    if not list(endpoint_methods(obj)):
        raise LoadError(f"{getattr(obj, '__name__', obj)!r} has no public methods to serve "
                        "or document")
    if not topic:
        raise LoadError("an endpoint needs --topic (or describe it with relaybus.Service)")
    name = obj.__name__ if inspect.isclass(obj) else type(obj).__name__
    return Service(name, Target(topic=topic, server=server), [obj])
