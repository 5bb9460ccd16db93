"""Remote callers reach methods only (issue 12): no property runs, no attribute is called."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import pytest

import relaybus
from relaybus import Target
from relaybus.errors import NoSuchMethod
from relaybus.rpc.dispatcher import RPCDispatcher, remote_method


class Base:
    def inherited(self, ctxt: Any) -> str:
        return "inherited"


class Endpoint(Base):
    evaluated: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.callback = lambda ctxt: "instance attribute"          # a callable attribute
        self.partial = functools.partial(print, "partial")         # a callable object
        self.shadowed = lambda ctxt: "shadow"                      # shadows a method

    @property
    def secret(self) -> str:
        Endpoint.evaluated.append("secret")
        return "the property ran"

    def shadowed(self, ctxt: Any) -> str:  # type: ignore[no-redef]
        return "method"

    @staticmethod
    def static(ctxt: Any) -> str:
        return "static"

    @classmethod
    def klass(cls, ctxt: Any) -> str:
        return cls.__name__

    nested_class = Base
    builtin = len


@pytest.mark.parametrize("name", ["secret", "callback", "partial", "nested_class", "builtin",
                                  "__init__", "__class__", "mro", "no_such"])
def test_only_methods_resolve(name: str) -> None:
    Endpoint.evaluated.clear()
    dispatcher = RPCDispatcher([Endpoint()])
    with pytest.raises(NoSuchMethod):
        dispatcher.resolve(name)
    assert Endpoint.evaluated == []  # looking a name up never runs a property


def test_plain_static_class_and_inherited_methods_resolve() -> None:
    dispatcher = RPCDispatcher([Endpoint()])
    assert dispatcher.resolve("inherited")({}) == "inherited"
    assert dispatcher.resolve("static")({}) == "static"
    assert dispatcher.resolve("klass")({}) == "Endpoint"
    # an instance attribute does not shadow the class's method for remote callers
    assert dispatcher.resolve("shadowed")({}) == "method"


async def test_a_remote_caller_cannot_evaluate_a_property() -> None:
    Endpoint.evaluated.clear()
    async with (await relaybus.connect("memory://methods_only") as bus,
                bus.rpc_server(Target(topic="methods_only", server="s1"), [Endpoint()])):
        client = bus.rpc_client(Target(topic="methods_only"), timeout=10)
        for name in ("secret", "callback", "partial"):
            with pytest.raises(NoSuchMethod):
                await client.call({}, name)
        assert await client.call({}, "inherited") == "inherited"
    assert Endpoint.evaluated == []


async def test_an_endpoint_resolving_names_itself_is_asked_and_nothing_else() -> None:
    asked: list[str] = []

    class Resolving:
        def __relaybus_method__(self, name: str) -> Any:
            asked.append(name)
            return (lambda ctxt, **kw: f"resolved {name}") if name == "dynamic" else None

        def static(self, ctxt: Any) -> str:
            return "never reached: the resolver decides"

    endpoint = Resolving()
    assert remote_method(endpoint, "dynamic")({}) == "resolved dynamic"
    assert remote_method(endpoint, "static") is None
    assert asked == ["dynamic", "static"]
