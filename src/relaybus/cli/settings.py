"""Settings for the commands: flags, then environment variables, then a TOML file.

The file is ``--config PATH``, else ``$RELAYBUS_CONFIG``, else ``./relaybus.toml`` when it
exists; its keys live at the top level or under a ``[relaybus]`` table. A URL given none of
these ways is the running ``relaybus broker``'s, else ``memory://``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relaybus.cli import localbroker
from relaybus.url import parse_url

CONFIG_ENV = "RELAYBUS_CONFIG"
DEFAULT_FILE = "relaybus.toml"


class SettingsError(ValueError):
    """A setting that cannot be used; the text names it and where it came from."""


def _positive_float(value: Any) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be a positive number")
    return number


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or int(value) != float(value) or int(value) < 1:
        raise ValueError("must be a whole number >= 1")
    return int(value)


def _port(value: Any) -> int:
    number = int(value)
    if not 0 <= number < 65536:
        raise ValueError("must be a port number")
    return number


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if str(value).lower() not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return str(value).lower()
    return check


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _topic(value: Any) -> str:
    from relaybus.target import Target

    Target(topic=str(value))  # InvalidTarget is a ValueError: a bad name says why
    return str(value)


def _url(value: Any) -> str:
    parse_url(str(value))
    return str(value)


# name -> (converter, default)
SETTINGS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "url": (_url, "memory://"),
    "control_exchange": (str, "openstack"),
    "timeout": (_positive_float, 60.0),
    "drain_timeout": (_positive_float, 30.0),
    "workers": (_positive_int, 64),
    "metrics_port": (_port, None),
    "metrics_addr": (str, "127.0.0.1"),
    "ping": (_bool, False),
    "dead_letter_topic": (_topic, None),
    "health_port": (_port, None),
    "health_addr": (str, "127.0.0.1"),
    "log_level": (_choice("debug", "info", "warning", "error"), "warning"),
    "log_format": (_choice("text", "json"), "text"),
}


def env_name(name: str) -> str:
    return f"RELAYBUS_{name.upper()}"


@dataclass
class Settings:
    """The effective settings and where each came from."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    config_file: Path | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def masked(self) -> dict[str, Any]:
        """The values, with secrets (URL passwords) masked."""
        shown = dict(self.values)
        shown["url"] = parse_url(self.values["url"]).masked() if "@" in self.values["url"] \
            else self.values["url"]
        return shown


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    table = data.get("relaybus", data)
    if not isinstance(table, dict):
        raise SettingsError(f"config file {path}: [relaybus] must be a table")
    unknown = sorted(set(table) - set(SETTINGS))
    if unknown:
        raise SettingsError(f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
                            f"known: {', '.join(SETTINGS)}")
    return table


def resolve(flags: Mapping[str, Any], config: str | None = None,
            environ: Mapping[str, str] | None = None) -> Settings:
    """Merge flags (None = not given), environment and config file over the defaults.

    Raises:
        SettingsError: a value that does not convert, an unknown key, an unreadable file.
    """
    environ = os.environ if environ is None else environ
    path: Path | None = None
    if config:
        path = Path(config)
    elif environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV])
    elif Path(DEFAULT_FILE).is_file():
        path = Path(DEFAULT_FILE)
    from_file = _read_file(path) if path is not None else {}
    settings = Settings(config_file=path)
    for name, (convert, default) in SETTINGS.items():
        settings.values[name], settings.sources[name] = default, "default"
        for source, raw in ((f"--{name.replace('_', '-')}", flags.get(name)),
                            (f"${env_name(name)}", environ.get(env_name(name))),
                            (f"{path}", from_file.get(name))):
            if raw is None:
                continue
            try:
                settings.values[name] = convert(raw)
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"{name} from {source}: {raw!r} {exc}") from None
            settings.sources[name] = source
            break
    if settings.sources["url"] == "default":
        local = localbroker.running_url(environ)
        if local is not None:
            settings.values["url"], settings.sources["url"] = local, "relaybus broker"
    return settings
