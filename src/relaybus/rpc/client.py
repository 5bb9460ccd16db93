"""The RPC client: calls and casts to a target."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from relaybus import telemetry
from relaybus.delivery.delay import check_delay, check_transport_can_delay, count_delayed
from relaybus.errors import InvalidTarget, RPCVersionCapError
from relaybus.message import Request
from relaybus.middleware import SEND_REQUEST, Pipeline, RequestInfo, run
from relaybus.rpc.remote_errors import deserialize_exception
from relaybus.serializer import JsonPayloadSerializer, Serializer
from relaybus.target import Target, parse_version
from relaybus.transport.base import Driver

DEFAULT_TIMEOUT = 60.0
_TARGET_FIELDS = ("exchange", "topic", "server", "fanout", "namespace", "version")
_UNSET: Any = object()


def request_topic(target: Target) -> str:
    """The topic a target's requests are counted under (metrics, span names)."""
    return target.topic or ""


def _check_timeout(name: str, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or value <= 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


class RPCClient:
    """Invokes methods on the servers of a target.

    Args:
        driver: the bus's transport.
        target: where requests go; needs a topic by the time something is sent.
        timeout: seconds a call waits for its reply (default 60).
        version_cap: the highest version this client may send (see :meth:`can_send_version`).
        serializer: converts arguments and results (default: JSON-safe conversion).
        allowed_remote_exmods: modules whose exceptions are rebuilt as themselves.
        call_monitor_timeout: ask the server for heartbeats; a call with no heartbeat for
            this long fails early, telling a dead server from a long call.
        delay: casts reach their servers this many seconds after they are sent (see
            docs/delivery.md for each transport's precision and longest delay); calls
            cannot be delayed.
        pipeline: the bus's middleware (default: telemetry only).
    """

    def __init__(
        self,
        driver: Driver,
        target: Target,
        *,
        timeout: float | None = None,
        version_cap: str | None = None,
        serializer: Serializer | None = None,
        allowed_remote_exmods: Collection[str] = (),
        call_monitor_timeout: float | None = None,
        delay: float | None = None,
        pipeline: Pipeline | None = None,
    ) -> None:
        if not isinstance(target, Target):
            raise InvalidTarget(f"an RPC client needs a relaybus.Target, got {target!r}")
        _check_timeout("timeout", timeout)
        _check_timeout("call_monitor_timeout", call_monitor_timeout)
        if version_cap is not None:
            parse_version(version_cap)
        if isinstance(allowed_remote_exmods, str):
            raise TypeError("allowed_remote_exmods must be a list of module names")
        self.target = target
        self.timeout = timeout if timeout is not None else DEFAULT_TIMEOUT
        self.version_cap = version_cap
        self.serializer = serializer or JsonPayloadSerializer()
        self.allowed_remote_exmods = tuple(allowed_remote_exmods)
        self.call_monitor_timeout = call_monitor_timeout
        self.delay = check_delay(delay)
        self._driver = driver
        self._pipeline = pipeline or Pipeline(builtins=telemetry.builtin_middleware)

    def prepare(self, *, timeout: float | None = _UNSET, version_cap: str | None = _UNSET,
                call_monitor_timeout: float | None = _UNSET, delay: float | None = _UNSET,
                **target_changes: Any) -> RPCClient:
        """A client for a narrowed target, sharing this one's transport.

        Takes the Target fields (``exchange, topic, server, fanout, namespace, version``)
        and ``timeout``, ``version_cap``, ``call_monitor_timeout``, ``delay``.
        """
        unknown = set(target_changes) - set(_TARGET_FIELDS)
        if unknown:
            raise TypeError(f"prepare() got unknown options: {', '.join(sorted(unknown))}")
        return RPCClient(
            self._driver,
            self.target.replace(**target_changes) if target_changes else self.target,
            timeout=self.timeout if timeout is _UNSET else timeout,
            version_cap=self.version_cap if version_cap is _UNSET else version_cap,
            serializer=self.serializer,
            allowed_remote_exmods=self.allowed_remote_exmods,
            call_monitor_timeout=(self.call_monitor_timeout if call_monitor_timeout is _UNSET
                                  else call_monitor_timeout),
            delay=self.delay if delay is _UNSET else delay,
            pipeline=self._pipeline,
        )

    def can_send_version(self, version: str | None = None) -> bool:
        """Whether a request at ``version`` (default: the target's) is within version_cap."""
        version = version or self.target.version
        if self.version_cap is None or version is None:
            return True
        cap, wanted = parse_version(self.version_cap), parse_version(version)
        return cap[0] == wanted[0] and wanted[1:] <= cap[1:]

    def _request(self, ctxt: Any, method: str, kwargs: Mapping[str, Any]) -> Request:
        if not isinstance(method, str) or not method:
            raise ValueError(f"method must be a non-empty string, got {method!r}")
        if self.target.topic is None:
            raise InvalidTarget("a call or cast needs a target with a topic")
        version = self.target.version
        if version is not None and not self.can_send_version(version):
            raise RPCVersionCapError(version, self.version_cap or "")
        context = self.serializer.serialize_context(ctxt)
        args = {name: self.serializer.serialize_entity(ctxt, value)
                for name, value in kwargs.items()}
        return Request(method=method, args=args, context=context,
                       namespace=self.target.namespace, version=version)

    async def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        """Invoke ``method`` on one server and return its result.

        Raises:
            MessagingTimeout: no reply within the timeout.
            MessageUndeliverable: no server listens on the target.
            NoSuchMethod: the endpoint has no such public method.
            UnsupportedVersion: no endpoint in that namespace, or none at that version.
            RemoteError: the endpoint raised (or the remote exception's own type, when
                it is a built-in or from an allowed module).
            TypeError: an argument cannot be encoded (nothing was sent).
        """
        if self.target.fanout:
            raise InvalidTarget("a call cannot be fanout: use cast() to reach every server")
        if self.delay is not None:
            raise ValueError("a call cannot be delayed: only casts can (prepare(delay=None))")
        request = self._request(ctxt, method, kwargs)
        hooks = self._pipeline.hooks(SEND_REQUEST)
        if hooks:
            return await run(hooks, self._info("call", request),
                             lambda _: self._call(ctxt, request))
        return await self._call(ctxt, request)

    async def _call(self, ctxt: Any, request: Request) -> Any:
        reply = await self._driver.send(self.target, request, wait_for_reply=True,
                                        timeout=self.timeout,
                                        call_monitor_timeout=self.call_monitor_timeout)
        assert reply is not None
        if reply.failure is not None:
            raise deserialize_exception(reply.failure, self.allowed_remote_exmods)
        return self.serializer.deserialize_entity(ctxt, reply.result)

    async def cast(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        """Invoke ``method`` without waiting for it (every server of the topic if fanout).

        With a ``delay``, the cast reaches its servers that many seconds later, and whether
        a server listens is not checked (one may start within the delay).

        Raises:
            MessageUndeliverable: no server listens on the target.
            TypeError: an argument cannot be encoded (nothing was sent).
            TransportError: a delay on a transport that cannot delay messages.
        """
        request = self._request(ctxt, method, kwargs)
        if self.delay is not None:
            check_transport_can_delay(self._driver, self.delay)
        hooks = self._pipeline.hooks(SEND_REQUEST)
        if hooks:
            await run(hooks, self._info("cast", request), lambda _: self._cast(request))
        elif self.delay is None:
            await self._driver.send(self.target, request, wait_for_reply=False)
        else:
            await self._cast(request)

    async def _cast(self, request: Request) -> None:
        if self.delay is None:
            await self._driver.send(self.target, request, wait_for_reply=False)
        else:
            await self._driver.cast_later(self.target, request, self.delay)
            count_delayed(request_topic(self.target), self.delay)

    def _info(self, kind: str, request: Request) -> RequestInfo:
        target = self.target
        return RequestInfo(kind, "send", request_topic(target), request.method,
                           args=request.args, context=request.context, server=target.server,
                           fanout=target.fanout, namespace=request.namespace,
                           version=request.version,
                           timeout=self.timeout if kind == "call" else None)
