"""Converting driver options from URL query text (or Python values) to their types.

Every driver reads its options from the URL query, where everything is text, and from
``connect(**options)``, where they are Python values; both pass through here, so every
driver accepts the same spellings (``1/true/yes/on``, ``0/false/no/off``) and reports a
bad value the same way.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from relaybus.errors import InvalidTransportURL

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def _text(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, os.PathLike):
        return os.fspath(raw)
    raise ValueError


def convert_option(url: str, name: str, raw: Any, kind: str) -> Any:
    """Convert one option to ``kind``: ``bool``, ``int``, ``float``, ``str``, or any of
    them ``| None``.

    Raises:
        InvalidTransportURL: the value does not convert (names the option and value).
    """
    optional = kind.endswith(" | None")
    base = kind.removesuffix(" | None")
    try:
        if raw is None or (optional and raw == ""):
            if optional:
                return None
            raise ValueError
        if base == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in TRUE:
                return True
            if text in FALSE:
                return False
            raise ValueError
        if isinstance(raw, bool):
            raise ValueError
        if base == "int":
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            return int(raw)
        if base == "float":
            return float(raw)
        if base == "str":
            text = _text(raw)
            if not text:
                raise ValueError
            return text
    except (TypeError, ValueError):
        pass
    else:
        raise AssertionError(f"no converter for {kind}")  # pragma: no cover
    raise InvalidTransportURL(url, f"option {name}={raw!r} is not a valid {base}")


def option_values(options_class: type, url: str, options: Mapping[str, Any], transport: str,
                  aliases: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Convert ``options`` to the fields of a driver's options dataclass.

    Field types are read from the dataclass (as text: ``"int"``, ``"str | None"``...);
    ``aliases`` maps other spellings (oslo.messaging's) to field names.

    Raises:
        InvalidTransportURL: an unknown option (the known ones are listed), or a bad value.
    """
    aliases = aliases or {}
    fields = {f.name: f for f in dataclasses.fields(options_class)}
    values: dict[str, Any] = {}
    for raw_name, raw in options.items():
        name = aliases.get(raw_name, raw_name)
        field = fields.get(name)
        if field is None:
            raise InvalidTransportURL(url, f"unknown {transport} option {raw_name!r}; known: "
                                      + ", ".join(sorted([*fields, *aliases])))
        values[name] = convert_option(url, raw_name, raw, str(field.type))
    return values
