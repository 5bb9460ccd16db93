"""Typed endpoint methods: their type hints are their contract.

A method's annotated parameters (after ``ctxt``) define the arguments it accepts: built-in
types, ``typing`` forms, dataclasses, ``msgspec.Struct`` and (when installed) pydantic
models. The server converts each argument to its declared type before the method runs,
and a mismatch reaches the caller as :class:`~relaybus.errors.InvalidArguments` naming the
argument, the path inside it and what was expected. Results of typed methods are turned
into JSON values the same way. A method without annotations is left untouched.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from relaybus.conversion import convert, explain, to_json_value
from relaybus.errors import InvalidArguments

_EMPTY = inspect.Parameter.empty
_PLAIN_TYPES = (str, int, float, bool)
#: results already in their JSON form (exactly these types, not subclasses such as enums)
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


class Parameter(msgspec.Struct, frozen=True):
    """One remotely callable argument of a method."""

    name: str
    annotation: Any = _EMPTY
    required: bool = True

    @property
    def typed(self) -> bool:
        return self.annotation is not _EMPTY


class MethodSignature:
    """The argument and result contract of one endpoint method.

    Args:
        func: the (bound or unbound) endpoint method; its first parameter after ``self``
            is the request context and is not part of the contract.
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self.name = getattr(func, "__name__", repr(func))
        self.doc = inspect.getdoc(func) or ""
        signature = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func)
        except Exception:  # noqa: BLE001 - unresolvable hints: treat the method as untyped
            hints = {}
        params = list(signature.parameters.values())
        if params and not inspect.ismethod(func) and params[0].name == "self":
            params = params[1:]
        params = params[1:]  # the context
        self.accepts_any_keyword = any(p.kind is p.VAR_KEYWORD for p in params)
        self.parameters = [
            Parameter(p.name, hints.get(p.name, _EMPTY), p.default is _EMPTY)
            for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        self.result = hints.get("return", _EMPTY)
        self.typed = any(p.typed for p in self.parameters) or self.result is not _EMPTY
        self._known = {p.name: p for p in self.parameters}
        self._names = frozenset(self._known)
        self._required = frozenset(p.name for p in self.parameters if p.required)
        # plain JSON types: a value already of exactly that type needs no conversion
        self._plain = {p.name: p.annotation for p in self.parameters
                       if p.annotation in _PLAIN_TYPES}

    def convert_arguments(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check and convert request arguments.

        Raises:
            InvalidArguments: an argument is missing, unexpected, or not of its type.
        """
        if not self.typed:
            return args
        names = args.keys()
        if self._required <= names <= self._names:  # the usual case, checked at C speed
            plain = self._plain
            for k, v in args.items():  # a loop, not all(<generator>): no generator per call
                if type(v) is not plain.get(k):
                    break
            else:
                return args
        known = self._known
        if not self.accepts_any_keyword:
            unexpected = sorted(set(args) - set(known))
            if unexpected:
                raise InvalidArguments(
                    f"{self.name}() got unexpected argument(s): {', '.join(unexpected)}",
                    self.name, unexpected[0])
        missing = [p.name for p in self.parameters if p.required and p.name not in args]
        if missing:
            raise InvalidArguments(
                f"{self.name}() is missing required argument(s): {', '.join(missing)}",
                self.name, missing[0])
        converted = dict(args)
        for name, value in args.items():
            param = known.get(name)
            if param is None or not param.typed:
                continue
            try:
                converted[name] = convert(value, param.annotation)
            except msgspec.ValidationError as exc:
                problem, path = explain(exc)
                raise InvalidArguments(
                    f"{self.name}() argument {name!r}: {problem} (at {path})",
                    self.name, name, path) from None
            except (ValueError, TypeError) as exc:
                raise InvalidArguments(f"{self.name}() argument {name!r}: {exc}",
                                       self.name, name, "$") from None
        return converted

    def convert_result(self, result: Any) -> Any:
        """The JSON form of a typed method's result (unchanged for untyped methods)."""
        if not self.typed or type(result) in _JSON_SCALARS:
            return result
        try:
            return to_json_value(result)
        except TypeError as exc:
            raise TypeError(f"result of {self.name}() is not JSON-serialisable: {exc}") from None


_cache: dict[Any, MethodSignature] = {}


def signature_of(method: Callable[..., Any]) -> MethodSignature:
    """The (cached) contract of an endpoint method."""
    key = getattr(method, "__func__", method)
    found = _cache.get(key)
    if found is None:
        found = _cache[key] = MethodSignature(method)
    return found
