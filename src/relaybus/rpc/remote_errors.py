"""Exceptions across the wire: an endpoint's exception becomes a failure, and back.

The failure is oslo.messaging's: ``{class, module, message, tb, args, kwargs}``. A client
rebuilds built-in exceptions and those of modules it allows (``allowed_remote_exmods``) as
a generated subclass ``<Class>_Remote`` of the original class (relaybus's own errors are
always allowed), so ``except ValueError`` works and the remote traceback rides along
(``remote_traceback``, and a note shown with the local traceback); anything else becomes
:class:`~relaybus.errors.RemoteError`.
``NoSuchMethod`` and ``UnsupportedVersion`` travel under oslo.messaging's module name, so
oslo peers recognise them, and arrive as relaybus's own classes.

A failure comes from a peer that may be hostile or simply different, so reading it never
raises and never trusts its shape: a ``tb`` that is a string is split into lines, any other
non-list (a number, a dict) is shown as text, and list items that are not strings are too;
``args`` that are missing, empty or not a list become ``[message]``, so the rebuilt
exception still says what went wrong. Terminal control characters (ESC sequences, the other
C0 and the C1 controls except newline and tab, DEL, and the bidirectional overrides) in
every string of the failure are escaped as ``\\xNN`` / ``\\uNNNN`` before they reach the
exception's text, its notes, ``remote_traceback`` or a log line.

``remote_traceback`` is the remote traceback as one string (what oslo.messaging folds into
the exception's text); ``remote_traceback_lines`` keeps the list of lines.
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


# C0 controls but tab and newline, DEL, C1 controls, and the bidi embedding/override/isolate
# marks ("Trojan Source"): everything that can move a terminal's cursor or reorder text.
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with terminal control characters escaped (newline and tab kept)."""
    return _CONTROL_RE.sub(_escape_char, text)


def _text(value: Any) -> str:
    """Any decoded JSON value as escaped text (never raises)."""
    if not isinstance(value, str):
        try:
            value = str(value)
        except Exception:  # noqa: BLE001 - RecursionError on absurd nesting, and the like
            value = f"<unprintable {type(value).__name__}>"
    return escape_controls(value)


def _clean(value: Any) -> Any:
    """A decoded JSON value with every string in it escaped (containers copied)."""
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    return value


def _traceback_lines(tb: Any) -> list[str]:
    """The remote traceback as escaped lines, whatever shape the peer sent."""
    if tb is None or tb == [] or tb == "":
        return []
    if isinstance(tb, str):
        return [escape_controls(line) for line in tb.splitlines(keepends=True)]
    if isinstance(tb, list):
        return [_text(line) for line in tb]
    return [_text(tb)]


def deserialize_exception(failure: Any,
                          allowed_modules: Collection[str] = ()) -> BaseException:
    """Rebuild the exception a failure describes (never raises while doing so)."""
    if not isinstance(failure, dict):
        return RemoteError("UnknownRemoteError", _text(failure), [], None)
    try:
        args, kwargs = _clean(failure.get("args")), _clean(failure.get("kwargs"))
    except RecursionError:
        args, kwargs = None, None
    name = _text(failure.get("class", "Exception"))
    module = _text(failure.get("module", _BUILTINS))
    message = _text(failure.get("message", ""))
    tb = _traceback_lines(failure.get("tb"))
    if module == "exceptions":
        module = _BUILTINS
    if not isinstance(failure.get("class"), str):
        return RemoteError("UnknownRemoteError", message, tb, module)
    standard = _standard_failure(name, module, message)
    if standard is not None:
        return _with_remote_traceback(standard, message, tb)
    if module not in _ALWAYS_ALLOWED and module not in allowed_modules:
        return RemoteError(name, message, tb, module)
    if not (isinstance(args, list) and args):
        args = [message]  # oslo peers may send none; the message must not be lost
    try:
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(f"{module}.{name} is not an exception class")
        exc = _remote_class(cls)(*args, **(kwargs if isinstance(kwargs, dict) else {}))
    except Exception:  # noqa: BLE001 - any failure to rebuild falls back to RemoteError
        return RemoteError(name, message, tb, module)
    return _with_remote_traceback(exc, message, tb)


def _with_remote_traceback(exc: BaseException, message: str, tb: list[str]) -> BaseException:
    text = "".join(line if line.endswith("\n") else line + "\n" for line in tb)
    exc.remote_message = message  # type: ignore[attr-defined]
    exc.remote_traceback = text  # type: ignore[attr-defined]
    exc.remote_traceback_lines = tb  # type: ignore[attr-defined]
    if text:
        exc.add_note("Remote traceback:\n" + text.rstrip("\n"))
    return exc
