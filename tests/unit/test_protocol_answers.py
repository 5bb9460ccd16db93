"""The answers docs/protocol gives a client written in another language hold for the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from relaybus.drivers.rabbit.options import RabbitOptions, connect_params
from relaybus.errors import RemoteError, UnsupportedVersion
from relaybus.message import parse_request
from relaybus.rpc.dispatcher import RPCDispatcher
from relaybus.rpc.remote_errors import deserialize_exception
from relaybus.target import Target
from relaybus.url import parse_url

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "schemas"
OLD_OSLO_CALL: dict[str, Any] = {  # an oslo.messaging client from before call monitoring
    "method": "ping", "args": {}, "_msg_id": "a" * 32, "_reply_q": "reply_" + "b" * 32,
    "_unique_id": "c" * 32,
}


def _schema(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMAS / f"{kind}.json").read_text()))


def test_a_call_without_timeout_is_valid_for_the_schema_and_the_server() -> None:
    _schema("request").validate(OLD_OSLO_CALL)
    request = parse_request(OLD_OSLO_CALL)
    assert request.expects_reply and request.timeout is None


def test_an_explicit_null_namespace_is_the_default_namespace() -> None:
    message = {**OLD_OSLO_CALL, "namespace": None}
    _schema("request").validate(message)
    assert parse_request(message).namespace is None


def test_an_explicit_null_version_is_read_as_1_0_though_the_schema_refuses_it() -> None:
    # Senders must omit it (an oslo.messaging server answers UnsupportedVersion); a relaybus
    # receiver is lenient and serves it as 1.0, as docs/protocol/README.md says.
    message = {**OLD_OSLO_CALL, "version": None}
    with pytest.raises(jsonschema.ValidationError):
        _schema("request").validate(message)
    request = parse_request(message)

    class Endpoint:
        target = Target(version="2.0")

        def ping(self, ctxt: Any) -> None: ...

    with pytest.raises(UnsupportedVersion, match=r"version 1\.0"):
        RPCDispatcher([Endpoint()]).resolve(request.method, request.namespace,
                                            request.version)


def test_a_call_still_needs_its_reply_queue() -> None:
    message = {k: v for k, v in OLD_OSLO_CALL.items() if k != "_reply_q"}
    with pytest.raises(jsonschema.ValidationError):
        _schema("request").validate(message)


@pytest.mark.parametrize("args", [[], None, "boom", 7])
def test_failure_args_that_say_nothing_keep_the_message(args: Any) -> None:
    failure = {"class": "ValueError", "module": "builtins", "message": "boom 42", "args": args}
    if args is None:
        del failure["args"]
    exc = deserialize_exception(failure)
    assert isinstance(exc, ValueError)
    assert str(exc) == "boom 42"


def test_kwargs_the_class_does_not_accept_make_a_remote_error() -> None:
    failure = {"class": "ValueError", "module": "builtins", "message": "boom",
               "args": ["boom"], "kwargs": {"code": 3}, "tb": ["line 1"]}
    _schema("failure").validate(failure)
    exc = deserialize_exception(failure)
    assert isinstance(exc, RemoteError)
    assert "boom" in str(exc)


def test_only_class_module_and_message_are_required_of_a_sender() -> None:
    _schema("failure").validate({"class": "ValueError", "module": "builtins", "message": "m"})
    with pytest.raises(jsonschema.ValidationError):
        _schema("failure").validate({"class": "ValueError", "module": "builtins"})


@pytest.mark.parametrize("url, vhost", [
    ("rabbit://u:p@h:5672/", "/"),
    ("rabbit://u:p@h:5672", "/"),
    ("rabbit://u:p@h:5672/%2F", "/"),
    ("rabbit://u:p@h:5672/nova", "nova"),
    ("rabbit://u:p@h:5672/a%2Fb", "a/b"),
])
def test_a_transport_url_path_maps_to_the_amqp_virtual_host(url: str, vhost: str) -> None:
    params = connect_params(parse_url(url), RabbitOptions(), "test")
    assert params[0].virtual_host == vhost
