"""Choosing the endpoint method that serves a request (no I/O).

An endpoint may declare ``target = Target(namespace=..., version=...)`` (default: no
namespace, version ``1.0``). A request is served by the first endpoint, in the order
given, with the same namespace, a compatible version (same major, minor at least the
requested one) and a method of that name the access policy exposes. If some endpoint
matched namespace and version but none had the method: :class:`NoSuchMethod`; if none
matched at all: :class:`UnsupportedVersion`. These are oslo.messaging's rules.

Remote callers reach **methods only**: a name resolves when the endpoint's class (or a
base class other than ``object``) defines it as a plain function, ``staticmethod`` or
``classmethod``. Properties are never evaluated, and instance attributes, callable objects,
classes and built-in methods are never called, whatever the access policy says.

An endpoint class that must resolve names itself (the oslo.messaging drop-in does, to keep
oslo's own rules) defines ``__relaybus_method__(self, name)`` returning the callable or
None; it is found by the same static lookup, so it is always a deliberate choice.
"""

from __future__ import annotations

import abc
import types
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from relaybus.errors import InvalidTarget, NoSuchMethod, UnsupportedVersion
from relaybus.target import Target, parse_version, version_is_compatible

DEFAULT_VERSION = "1.0"
_EXPOSED = "__relaybus_exposed__"
_RESOLVER = "__relaybus_method__"

F = TypeVar("F", bound=Callable[..., Any])


def expose(func: F) -> F:
    """Mark an endpoint method as callable under :class:`ExplicitRPCAccessPolicy`."""
    setattr(func, _EXPOSED, True)
    return func


class RPCAccessPolicy(abc.ABC):
    """Decides which endpoint methods remote callers may invoke.

    Attributes:
        explain_namespace: a caller whose namespace no endpoint serves gets
            ``UnsupportedVersion`` with "(no endpoint in namespace ...)" added to the message
            (oslo.messaging says only "version"); False keeps oslo's exact text.
    """

    explain_namespace: bool = True

    @abc.abstractmethod
    def is_allowed(self, endpoint: object, name: str, method: Callable[..., Any]) -> bool:
        """Whether ``endpoint.name`` may be called remotely."""


class DefaultRPCAccessPolicy(RPCAccessPolicy):
    """Every public method: names starting with ``_`` are never callable."""

    def is_allowed(self, endpoint: object, name: str, method: Callable[..., Any]) -> bool:
        return not name.startswith("_")


class ExplicitRPCAccessPolicy(DefaultRPCAccessPolicy):
    """Only public methods decorated with :func:`expose`."""

    def is_allowed(self, endpoint: object, name: str, method: Callable[..., Any]) -> bool:
        return super().is_allowed(endpoint, name, method) and getattr(method, _EXPOSED, False)


def _static_function(klass: type, name: str) -> Callable[..., Any] | None:
    for base in klass.__mro__:
        if base is object:
            return None
        found = base.__dict__.get(name)
        if found is not None:
            return found if isinstance(found, types.FunctionType) else None
    return None


def remote_method(obj: object, name: str) -> Callable[..., Any] | None:
    """``obj``'s method ``name`` bound to it, if remote callers may reach it at all.

    Only functions defined on the class (not on ``object``) qualify; the lookup is static,
    so no property or ``__getattr__`` runs, and an instance attribute of the same name does
    not shadow the method. A class defining ``__relaybus_method__`` resolves names itself.
    """
    resolver = _static_function(type(obj), _RESOLVER)
    if resolver is not None:
        resolved: Callable[..., Any] | None = resolver(obj, name)
        return resolved
    for klass in type(obj).__mro__:
        if klass is object:
            return None
        found = klass.__dict__.get(name)
        if found is None:
            continue
        if isinstance(found, (staticmethod, classmethod)):
            if not isinstance(found.__func__, types.FunctionType):
                return None
        elif not isinstance(found, types.FunctionType):
            return None
        bound: Callable[..., Any] = found.__get__(obj, type(obj))
        return bound
    return None


class _Endpoint:
    __slots__ = ("obj", "namespace", "version")

    def __init__(self, obj: object) -> None:
        target = getattr(obj, "target", None)
        if target is not None and not isinstance(target, Target):
            raise InvalidTarget(f"endpoint {obj!r} has a 'target' that is not a relaybus.Target")
        self.obj = obj
        self.namespace = target.namespace if target is not None else None
        self.version = (target.version if target is not None else None) or DEFAULT_VERSION


class RPCDispatcher:
    """Resolves ``(method, namespace, version)`` to a bound endpoint method."""

    def __init__(self, endpoints: Sequence[object],
                 access_policy: RPCAccessPolicy | None = None) -> None:
        if isinstance(endpoints, (str, bytes)) or not isinstance(endpoints, Sequence):
            raise TypeError("endpoints must be a list of endpoint objects")
        if not endpoints:
            raise ValueError("an RPC server needs at least one endpoint")
        self._endpoints = [_Endpoint(e) for e in endpoints]
        self._policy = access_policy or DefaultRPCAccessPolicy()
        self._cache: dict[tuple[str, str | None, str | None], Callable[..., Any]] = {}

    def resolve(self, method: str, namespace: str | None = None,
                version: str | None = None) -> Callable[..., Any]:
        """The method that serves the request.

        Raises:
            NoSuchMethod: an endpoint matched namespace and version, none had the method.
            UnsupportedVersion: no endpoint serves that namespace and version.
        """
        key = (method, namespace, version)
        found = self._cache.get(key)
        if found is not None:
            return found
        requested = version or DEFAULT_VERSION
        try:
            parse_version(requested)
        except InvalidTarget:
            raise UnsupportedVersion(version, method) from None
        matched = False
        for endpoint in self._endpoints:
            if endpoint.namespace != namespace:
                continue
            if not version_is_compatible(endpoint.version, requested):
                continue
            matched = True
            candidate = remote_method(endpoint.obj, method)
            if candidate is not None \
                    and self._policy.is_allowed(endpoint.obj, method, candidate):
                if len(self._cache) < 4096:
                    self._cache[key] = candidate
                return candidate
        if matched:
            raise NoSuchMethod(method)
        unsupported = UnsupportedVersion(requested, method)  # oslo's text, the version used
        if self._policy.explain_namespace \
                and all(endpoint.namespace != namespace for endpoint in self._endpoints):
            # oslo says "version" for this too; the caller is told which it was
            unsupported.remote_message = (  # type: ignore[attr-defined]
                f"{unsupported} (no endpoint in namespace {namespace!r})")
        raise unsupported
