"""Exceptions across the wire: an endpoint's exception becomes a failure, and back.

The failure is oslo.messaging's: ``{class, module, message, tb, args, kwargs}``. A client
rebuilds built-in exceptions and those of modules it allows (``allowed_remote_exmods``) as
a generated subclass ``<Class>_Remote`` of the original class (relaybus's own errors are
always allowed), so ``except ValueError`` works and the remote traceback rides along
(``remote_traceback``, and a note shown with the local traceback); anything else becomes
:class:`~relaybus.errors.RemoteError`.
``NoSuchMethod`` and ``UnsupportedVersion`` travel under oslo.messaging's module name, so
oslo peers recognise them, and arrive as relaybus's own classes.
"""

from __future__ import annotations

import importlib
import re
import traceback
from collections.abc import Collection
from typing import Any

from relaybus.errors import NoSuchMethod, RemoteError, UnsupportedVersion
from relaybus.message import encode_json
from relaybus.serializer import to_primitive

OSLO_DISPATCHER_MODULE = "oslo_messaging.rpc.dispatcher"
_REMOTE_SUFFIX = "_Remote"
_BUILTINS = "builtins"
# relaybus's own errors (InvalidArguments...) are always rebuilt as themselves.
_ALWAYS_ALLOWED = frozenset({_BUILTINS, "relaybus.errors"})

_wire_module_of: dict[type[BaseException], str] = {
    NoSuchMethod: OSLO_DISPATCHER_MODULE,
    UnsupportedVersion: OSLO_DISPATCHER_MODULE,
}
_NO_SUCH_METHOD_RE = re.compile(r"^Endpoint does not support RPC method (.*)$", re.S)
_UNSUPPORTED_RE = re.compile(
    r"^Endpoint does not support RPC version (.*?)\. Attempted method: (.*)$", re.S)


def _json_safe(values: Any, fallback: Any) -> Any:
    values = to_primitive(values)
    try:
        encode_json(values)
    except TypeError:
        return fallback
    return values


def serialize_exception(exc: BaseException) -> dict[str, Any]:
    """The failure object describing ``exc`` (sent as the ``failure`` of a reply)."""
    cls = type(exc)
    name, module = cls.__name__, cls.__module__
    if name.endswith(_REMOTE_SUFFIX) and module.endswith(_REMOTE_SUFFIX):
        # Re-raising an exception received from another server: report the original.
        name, module = name[: -len(_REMOTE_SUFFIX)], module[: -len(_REMOTE_SUFFIX)]
    module = _wire_module_of.get(cls, module)
    message = getattr(exc, "remote_message", None) or str(exc)
    kwargs = getattr(exc, "kwargs", None)
    return {
        "class": name,
        "module": module,
        "message": message,
        "tb": traceback.format_exception(exc),
        "args": _json_safe(list(exc.args), [message]),
        "kwargs": _json_safe(kwargs, {}) if isinstance(kwargs, dict) else {},
    }


_remote_classes: dict[type[BaseException], type[BaseException]] = {}


def _remote_class(cls: type[BaseException]) -> type[BaseException]:
    remote = _remote_classes.get(cls)
    if remote is None:
        remote = type(cls.__name__ + _REMOTE_SUFFIX, (cls,),
                      {"__module__": cls.__module__ + _REMOTE_SUFFIX})
        _remote_classes[cls] = remote
    return remote


def _standard_failure(name: str, module: str, message: str) -> BaseException | None:
    if module not in (OSLO_DISPATCHER_MODULE, "relaybus.errors"):
        return None
    if name == "NoSuchMethod":
        match = _NO_SUCH_METHOD_RE.match(message)
        return NoSuchMethod(match.group(1) if match else message)
    if name == "UnsupportedVersion":
        match = _UNSUPPORTED_RE.match(message)
        if match:
            return UnsupportedVersion(match.group(1), match.group(2))
        return UnsupportedVersion(message)
    return None


def deserialize_exception(failure: dict[str, Any],
                          allowed_modules: Collection[str] = ()) -> BaseException:
    """Rebuild the exception a failure describes (never raises while doing so)."""
    name = str(failure.get("class", "Exception"))
    module = str(failure.get("module", _BUILTINS))
    message = str(failure.get("message", ""))
    tb = [str(line) for line in failure.get("tb") or []]
    args = failure.get("args")
    kwargs = failure.get("kwargs")
    if module == "exceptions":
        module = _BUILTINS
    if not isinstance(failure.get("class"), str):
        return RemoteError("UnknownRemoteError", message, tb, module)
    standard = _standard_failure(name, module, message)
    if standard is not None:
        return _with_remote_traceback(standard, message, tb)
    if module not in _ALWAYS_ALLOWED and module not in allowed_modules:
        return RemoteError(name, message, tb, module)
    try:
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(f"{module}.{name} is not an exception class")
        exc = _remote_class(cls)(*(args if isinstance(args, list) else [message]),
                                 **(kwargs if isinstance(kwargs, dict) else {}))
    except Exception:  # noqa: BLE001 - any failure to rebuild falls back to RemoteError
        return RemoteError(name, message, tb, module)
    return _with_remote_traceback(exc, message, tb)


def _with_remote_traceback(exc: BaseException, message: str, tb: list[str]) -> BaseException:
    exc.remote_message = message  # type: ignore[attr-defined]
    exc.remote_traceback = tb  # type: ignore[attr-defined]
    if tb:
        exc.add_note("Remote traceback:\n" + "".join(tb).rstrip("\n"))
    return exc
