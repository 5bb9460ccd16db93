"""Finding a driver for a URL scheme, through the ``relaybus.transports`` entry points.

The memory driver registers itself the same way a third-party driver would; code can also
register a driver class at run time with :func:`register_transport` (tests, plug-ins not
installed as distributions).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from relaybus.errors import InvalidTransportURL
from relaybus.transport.base import Driver

ENTRY_POINT_GROUP = "relaybus.transports"

# Extra an installed-but-unusable driver needs, for a friendly error.
_EXTRAS = {"rabbit": "rabbit", "nats": "nats"}

_registered: dict[str, type[Driver]] = {}


def register_transport(scheme: str, driver_class: type[Driver]) -> None:
    """Make ``scheme://`` URLs use ``driver_class`` in this process."""
    _registered[scheme.lower()] = driver_class


def available_schemes() -> list[str]:
    """Every scheme a URL may use here, sorted."""
    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names | set(_registered))


def driver_class_for(scheme: str, url_text: str = "") -> type[Driver]:
    """The driver class registered for ``scheme``.

    Raises:
        InvalidTransportURL: no driver has that scheme, or its extra is not installed.
    """
    if scheme in _registered:
        return _registered[scheme]
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        try:
            driver = ep.load()
        except ImportError as exc:
            extra = _EXTRAS.get(scheme, scheme)
            raise InvalidTransportURL(
                url_text or f"{scheme}://",
                f"the {scheme!r} transport needs packages that are not installed "
                f"({exc.name or exc}); install them with: pip install 'relaybus[{extra}]'",
            ) from exc
        if not (isinstance(driver, type) and issubclass(driver, Driver)):
            raise InvalidTransportURL(url_text or f"{scheme}://",
                                      f"entry point {ep.value} is not a relaybus Driver")
        return driver
    raise InvalidTransportURL(
        url_text or f"{scheme}://",
        f"no transport is installed for scheme {scheme!r}; installed: "
        f"{', '.join(available_schemes()) or 'none'}",
    )
