"""The drop-in shows callers what oslo.messaging shows them: rebuilt remote exceptions,
the version-cap error's text, and NotificationFilter on context objects."""

from __future__ import annotations

from typing import Any

from relaybus.oslo_messaging import NotificationFilter, RPCVersionCapError
from relaybus.oslo_messaging.rpc._remote import oslo_shaped
from relaybus.rpc.remote_errors import deserialize_exception, serialize_exception


class Refused(Exception):
    """A service's own exception, in a module the caller allows."""


def _round_trip(exc: Exception, allowed: tuple[str, ...] = ()) -> BaseException:
    try:
        raise exc
    except Exception as raised:  # noqa: BLE001 - the failure of any exception
        failure = serialize_exception(raised)
    return oslo_shaped(deserialize_exception(failure, allowed))


def test_builtin_exception_keeps_its_class_and_carries_the_traceback_in_args() -> None:
    rebuilt = _round_trip(KeyError("missing"))
    assert type(rebuilt) is KeyError
    first, *rest = rebuilt.args[0].splitlines()
    assert first == "'missing'"
    assert rest[0] == "Traceback (most recent call last):"


def test_service_exception_is_remote_subclass_whose_text_has_the_traceback() -> None:
    rebuilt = _round_trip(Refused("no room"), (__name__,))
    assert isinstance(rebuilt, Refused)
    assert type(rebuilt).__name__ == "Refused_Remote"
    assert rebuilt.args == ("no room",)
    assert str(rebuilt).splitlines()[:2] == ["no room", "Traceback (most recent call last):"]


def test_version_cap_error_text_is_oslos() -> None:
    assert str(RPCVersionCapError("2.3", "2.2")) == (
        "Requested message version, 2.3 is incompatible.  It needs to be equal in major "
        "version and less than or equal in minor version as the specified version cap 2.2.")


class _Context:
    """A request context that is no mapping but supports ``in`` and ``[]``."""

    def __init__(self, **values: str) -> None:
        self._values = values

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]


def test_filter_reads_context_objects_like_oslo() -> None:
    rule = NotificationFilter(context={"user": "^adm"})
    assert rule.match(_Context(user="admin"), "compute", "x.start", {}, {})
    assert not rule.match(_Context(user="bob"), "compute", "x.start", {}, {})
    assert not rule.match(_Context(), "compute", "x.start", {}, {})
