"""Exceptions across the wire, in oslo.messaging's failure format."""

import pytest

from relaybus import NoSuchMethod, RemoteError, UnsupportedVersion
from relaybus.rpc.remote_errors import deserialize_exception, serialize_exception
from relaybus.testing.behaviour import WidgetNotFound


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001
        return caught


def test_builtin_failure_fields() -> None:
    failure = serialize_exception(_raised(ValueError("bad value: 42")))
    assert failure["class"] == "ValueError" and failure["module"] == "builtins"
    assert failure["message"] == "bad value: 42" and failure["args"] == ["bad value: 42"]
    assert failure["kwargs"] == {} and failure["tb"][-1].startswith("ValueError")


def test_builtin_comes_back_as_a_subclass_with_the_remote_traceback() -> None:
    exc = deserialize_exception(serialize_exception(_raised(KeyError("k"))))
    assert isinstance(exc, KeyError) and type(exc).__name__ == "KeyError_Remote"
    assert exc.remote_traceback  # type: ignore[attr-defined]
    assert any("Remote traceback" in note for note in exc.__notes__)


def test_custom_exception_needs_an_allowed_module() -> None:
    failure = serialize_exception(_raised(WidgetNotFound("Widget w-17", widget_id="w-17")))
    assert failure["kwargs"] == {"widget_id": "w-17"}
    remote = deserialize_exception(failure)
    assert isinstance(remote, RemoteError)
    assert remote.exc_type == "WidgetNotFound" and remote.value == "Widget w-17"
    assert str(remote).startswith("Remote error: WidgetNotFound Widget w-17")
    rebuilt = deserialize_exception(failure, [WidgetNotFound.__module__])
    assert isinstance(rebuilt, WidgetNotFound) and rebuilt.kwargs == {"widget_id": "w-17"}


def test_re_raised_remote_exception_reports_the_original_class() -> None:
    remote = deserialize_exception(serialize_exception(_raised(ValueError("x"))))
    again = serialize_exception(remote)
    assert (again["class"], again["module"], again["message"]) == ("ValueError", "builtins", "x")


def test_standard_failures_use_oslo_names_and_come_back_as_relaybus_errors() -> None:
    failure = serialize_exception(NoSuchMethod("frobnicate"))
    assert failure["module"] == "oslo_messaging.rpc.dispatcher"
    assert failure["message"] == "Endpoint does not support RPC method frobnicate"
    back = deserialize_exception(failure)
    assert isinstance(back, NoSuchMethod) and back.method == "frobnicate"
    version = deserialize_exception(serialize_exception(UnsupportedVersion("1.5", "m")))
    assert isinstance(version, UnsupportedVersion)
    assert (version.version, version.method) == ("1.5", "m")


@pytest.mark.parametrize("failure", [
    {"class": "NotAClass", "module": "builtins", "message": "m"},
    {"class": "path", "module": "os", "message": "m"},
    {"class": "Nope", "module": "no_such_module_anywhere", "message": "m"},
    {"class": "ValueError", "module": "builtins", "message": "m", "args": [1],
     "kwargs": {"unexpected": 1}},
    {},
])
def test_anything_unrebuildable_becomes_remote_error(failure: dict) -> None:
    allowed = ["os", "no_such_module_anywhere"]
    assert isinstance(deserialize_exception(failure, allowed), RemoteError)


def test_legacy_exceptions_module_means_builtins() -> None:
    exc = deserialize_exception({"class": "ValueError", "module": "exceptions",
                                 "message": "old", "args": ["old"]})
    assert isinstance(exc, ValueError)


def test_unencodable_exception_args_fall_back_to_the_message() -> None:
    failure = serialize_exception(_raised(ValueError(object())))
    assert failure["args"] == [failure["message"]]
