"""Remote exceptions shaped the way oslo.messaging's callers see them.

relaybus rebuilds an allowed remote exception as ``<Class>_Remote`` with the remote
traceback in ``remote_traceback``. oslo.messaging folds the traceback into the exception
instead: a built-in exception (``KeyError``...) keeps its own class and its first argument
becomes the remote message plus the traceback; any other class becomes ``<Class>_Remote``
whose ``str()`` is that same text. :func:`oslo_shaped` turns the first form into the second.
"""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["oslo_shaped"]

_REMOTE_SUFFIX = "_Remote"
_str_classes: dict[type[BaseException], type[BaseException]] = {}


def _oslo_text(exc: BaseException) -> str:
    lines = getattr(exc, "remote_traceback_lines", None) or []
    return f"{getattr(exc, 'remote_message', '')}\n" + "\n".join(lines)


def _remote_str(self: BaseException) -> str:
    return _oslo_text(self)


def _with_oslo_str(cls: type[BaseException]) -> type[BaseException]:
    found = _str_classes.get(cls)
    if found is None:
        found = type(cls.__name__, (cls,), {"__str__": _remote_str,
                                            "__module__": cls.__module__})
        _str_classes[cls] = found
    return found


def _original_class(exc: BaseException) -> type[BaseException] | None:
    cls = type(exc)
    if not cls.__name__.endswith(_REMOTE_SUFFIX):
        return None
    base = cls.__bases__[0]
    return base if base.__name__ + _REMOTE_SUFFIX == cls.__name__ else None


def _plain_builtin(cls: type[BaseException], exc: BaseException,
                   args: tuple[Any, ...]) -> BaseException:
    try:
        plain = cls(*exc.args)
    except Exception:  # noqa: BLE001 - a constructor that rejects its own args: keep exc
        exc.args = args
        return exc
    plain.args = args
    plain.__dict__.update(exc.__dict__)  # remote_traceback..., and __notes__
    return plain


def oslo_shaped(exc: BaseException) -> BaseException:
    """``exc`` as oslo.messaging would have rebuilt it (unchanged if not rebuilt)."""
    if not hasattr(exc, "remote_message"):
        return exc
    original = _original_class(exc)
    if original is None:
        return exc
    if original.__module__ == "builtins":
        return _plain_builtin(original, exc, (_oslo_text(exc), *exc.args[1:]))
    with contextlib.suppress(TypeError):
        exc.__class__ = _with_oslo_str(type(exc))
    return exc
