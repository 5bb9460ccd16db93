"""Endpoint selection by namespace, version and access policy (no I/O)."""

from typing import Any

import pytest

from relaybus import (
    ExplicitRPCAccessPolicy,
    InvalidTarget,
    NoSuchMethod,
    Target,
    UnsupportedVersion,
    expose,
)
from relaybus.rpc.dispatcher import RPCDispatcher


class V10:
    def ping(self, ctxt: Any) -> str:
        return "v1.0"


class V13:
    target = Target(namespace="ns", version="1.3")

    def ping(self, ctxt: Any) -> str:
        return "ns1.3"


class V21:
    target = Target(namespace="ns", version="2.1")

    def ping(self, ctxt: Any) -> str:
        return "ns2.1"

    @expose
    def exposed(self, ctxt: Any) -> str:
        return "exposed"


def test_default_namespace_and_version() -> None:
    dispatcher = RPCDispatcher([V10(), V13()])
    assert dispatcher.resolve("ping")(None) == "v1.0"
    assert dispatcher.resolve("ping", None, "1.0")(None) == "v1.0"


def test_major_versions_side_by_side() -> None:
    dispatcher = RPCDispatcher([V13(), V21()])
    assert dispatcher.resolve("ping", "ns", "1.2")(None) == "ns1.3"
    assert dispatcher.resolve("ping", "ns", "2.0")(None) == "ns2.1"
    with pytest.raises(UnsupportedVersion):
        dispatcher.resolve("ping", "ns", "2.2")
    with pytest.raises(UnsupportedVersion):
        dispatcher.resolve("ping", "ns", "not-a-version")


def test_no_such_method_when_the_version_matched() -> None:
    with pytest.raises(NoSuchMethod):
        RPCDispatcher([V13()]).resolve("missing", "ns", "1.0")


def test_attributes_classes_and_private_names_are_not_methods() -> None:
    class Endpoint:
        target = Target(version="1.0")
        data = 5
        Inner = V10

        def _hidden(self, ctxt: Any) -> None: ...

    dispatcher = RPCDispatcher([Endpoint()])
    for name in ("target", "data", "Inner", "_hidden", "__init__", "__class__"):
        with pytest.raises(NoSuchMethod):
            dispatcher.resolve(name)


def test_explicit_policy_needs_expose() -> None:
    dispatcher = RPCDispatcher([V21()], ExplicitRPCAccessPolicy())
    assert dispatcher.resolve("exposed", "ns", "2.0")(None) == "exposed"
    with pytest.raises(NoSuchMethod):
        dispatcher.resolve("ping", "ns", "2.0")


def test_bad_endpoint_lists() -> None:
    with pytest.raises(ValueError):
        RPCDispatcher([])
    with pytest.raises(TypeError):
        RPCDispatcher(V10())  # type: ignore[arg-type]

    class BadTarget:
        target = "compute"

    with pytest.raises(InvalidTarget):
        RPCDispatcher([BadTarget()])
