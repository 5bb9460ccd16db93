"""The RPC server: takes requests for a target and answers them from its endpoints."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from relaybus import telemetry
from relaybus.delivery import DeliveryPolicy
from relaybus.delivery.casts import CastDelivery
from relaybus.errors import (
    InvalidTarget,
    MessageTooLarge,
    MessagingError,
    Rejected,
    ServerError,
)
from relaybus.lifecycle import Consuming
from relaybus.message import Request
from relaybus.middleware import HANDLE_REQUEST, Hook, Pipeline, RejectionLog, RequestInfo, run
from relaybus.rpc.dispatcher import RPCAccessPolicy, RPCDispatcher
from relaybus.rpc.ping import with_ping
from relaybus.rpc.remote_errors import serialize_exception
from relaybus.rpc.signature import MethodSignature, signature_of
from relaybus.serializer import JsonPayloadSerializer, NoOpSerializer, Serializer
from relaybus.target import Target
from relaybus.transport.base import Driver, IncomingRequest, Subscription

LOG = logging.getLogger(__name__)

MIN_HEARTBEAT_TIMEOUT = 2


class RPCServer(Consuming):
    """Serves calls and casts sent to ``target`` with methods of ``endpoints``.

    Use it as ``async with server:`` or with :meth:`start`, :meth:`stop` and :meth:`wait`.
    Stopping takes no new requests, lets the ones in progress finish for up to
    ``drain_timeout`` seconds, then cancels the rest (their callers get a failure).

    Args:
        driver: the bus's transport.
        target: needs a topic; ``server`` defaults to this host's name.
        endpoints: objects whose public methods are callable remotely.
        access_policy: which methods may be called (default: those not starting with ``_``).
        serializer: converts arguments and results (default: JSON-safe conversion).
        max_concurrency: requests handled at once; more wait in the transport.
        threads: size of the thread pool that runs plain ``def`` methods.
        drain_timeout: how long :meth:`wait` lets running requests finish.
        delivery: what happens when a *cast* fails (attempts, backoff, permanent errors,
            dead-letter topic; see :class:`~relaybus.delivery.DeliveryPolicy`). Calls are
            never retried: they stay at-most-once, as oslo.messaging defines them, and their
            caller gets the error. Default: a failed cast is logged.
        ping: answer oslo.messaging's ``oslo_rpc_server_ping`` (as its
            ``rpc_ping_enabled`` does; see :mod:`relaybus.rpc.ping`).
        pipeline: the bus's middleware (default: telemetry only).

    Attributes:
        rejections: requests the middleware rejected, counted by reason (error class).
    """

    def __init__(
        self,
        driver: Driver,
        target: Target,
        endpoints: Sequence[object],
        *,
        access_policy: RPCAccessPolicy | None = None,
        serializer: Serializer | None = None,
        max_concurrency: int = 64,
        threads: int = 16,
        drain_timeout: float = 30.0,
        delivery: DeliveryPolicy | None = None,
        pipeline: Pipeline | None = None,
        ping: bool = False,
    ) -> None:
        if not isinstance(target, Target):
            raise InvalidTarget(f"an RPC server needs a relaybus.Target, got {target!r}")
        if target.topic is None:
            raise InvalidTarget("an RPC server target needs a topic")
        if target.fanout:
            raise InvalidTarget("an RPC server target cannot be fanout")
        if target.server is None:
            target = target.replace(server=socket.gethostname())
        super().__init__(f"relaybus.rpc[{target.topic}.{target.server}]",
                         max_concurrency=max_concurrency, threads=threads,
                         drain_timeout=drain_timeout)
        self.target = target
        if endpoints and isinstance(endpoints, Sequence) \
                and not isinstance(endpoints, (str, bytes)):
            endpoints = with_ping(endpoints, ping, target.server)
        self.dispatcher = RPCDispatcher(endpoints, access_policy)
        # (method, namespace, version) -> the method the dispatcher resolved, its signature
        self._methods: dict[tuple[str, str | None, str | None],
                            tuple[Callable[..., Any], MethodSignature]] = {}
        self._driver = driver
        self._serializer = serializer or JsonPayloadSerializer()
        # the default serializer rebuilds nothing: arguments need no per-request copy
        self._args_as_sent = type(self._serializer).deserialize_entity \
            is NoOpSerializer.deserialize_entity
        self._casts = CastDelivery(driver, target, delivery)
        self._pipeline = pipeline or Pipeline(builtins=telemetry.builtin_middleware)
        self.rejections = RejectionLog(LOG, f"{target.topic}.{target.server}")

    async def _subscribe(self) -> Subscription:
        return await self._driver.listen(self.target, self._on_request)

    def _on_request(self, incoming: IncomingRequest) -> Awaitable[None]:
        return self._hand_over(lambda: self._handle(incoming))

    async def _handle(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        try:
            hooks = self._pipeline.hooks(HANDLE_REQUEST)
            if hooks:
                result = await self._run_hooks(hooks, incoming)
            else:
                result = await self._execute(incoming, None)
        except asyncio.CancelledError:
            await self._fail(incoming, ServerError("the server stopped before the call finished"))
            raise
        except Rejected as exc:
            kind = "call" if request.expects_reply else "cast"
            self.rejections.note(f"{kind} {request.method}", exc, _ids(request, self.target))
            if request.expects_reply:
                await self._fail(incoming, exc)
            return
        except Exception as exc:  # noqa: BLE001 - every endpoint error goes to the caller
            await self._fail(incoming, exc)
            return
        try:
            await incoming.reply(result=result)
        except (TypeError, MessageTooLarge) as exc:
            await self._fail(incoming, exc)
        except MessagingError as exc:  # the transport failed: the caller will time out
            LOG.warning("could not send the reply to %s: %s: %s", request.method,
                        type(exc).__name__, exc, extra=_ids(request, self.target))

    async def _run_hooks(self, hooks: tuple[Hook, ...], incoming: IncomingRequest) -> Any:
        request = incoming.request
        info = RequestInfo(
            "call" if request.expects_reply else "cast", "handle", self.target.topic or "",
            request.method, args=request.args, context=request.context,
            server=self.target.server, namespace=request.namespace, version=request.version,
            message_id=request.msg_id or request.unique_id, timeout=request.timeout)
        try:  # resolved first, so middleware knows a real method from a junk name
            method = self.dispatcher.resolve(request.method, request.namespace,
                                             request.version)
        except MessagingError as exc:
            unresolved = exc
            return await run(hooks, info, lambda _: _raise(unresolved))
        info.resolved = True
        return await run(hooks, info, lambda _: self._execute(incoming, method))

    async def _execute(self, incoming: IncomingRequest,
                       method: Callable[..., Any] | None) -> Any:
        """Decode, dispatch and run one request; its result in serialized form."""
        request = incoming.request
        heartbeats = None
        try:
            # as oslo.messaging servers do
            ctxt = self._serializer.deserialize_context(
                {**request.context, "client_timeout": request.timeout})
            key = (request.method, request.namespace, request.version)
            known = self._methods.get(key) if method is None else None
            if known is None:
                if method is None:
                    method = self.dispatcher.resolve(*key)
                    known = (method, signature_of(method))
                    if len(self._methods) < 1024:
                        self._methods[key] = known
                else:
                    known = (method, signature_of(method))
            method, signature = known
            args = signature.convert_arguments(request.args if self._args_as_sent else
                {k: self._serializer.deserialize_entity(ctxt, v) for k, v in request.args.items()})
            expects_reply = request.msg_id is not None
            if expects_reply and request.timeout and request.timeout >= MIN_HEARTBEAT_TIMEOUT:
                heartbeats = asyncio.get_running_loop().create_task(
                    _send_heartbeats(incoming, request.timeout / 2),
                    name=f"relaybus.rpc.heartbeat[{request.msg_id}]")
            if expects_reply:  # the executor as the property gives it, without its frame
                executor = self._executor if self._executor is not None else self.executor
                result = await executor.run(method, ctxt, **args)
            else:
                result = await self._casts.run(request, lambda: self.executor.run(
                    method, ctxt, **args))
            return self._serializer.serialize_entity(ctxt, signature.convert_result(result))
        finally:
            if heartbeats is not None:
                heartbeats.cancel()

    async def _fail(self, incoming: IncomingRequest, exc: BaseException) -> None:
        request = incoming.request
        if not request.expects_reply:
            await self._casts.failed(request, exc, _ids(request, self.target))
            return
        try:
            await incoming.reply(failure=serialize_exception(exc))
        except Exception:
            LOG.exception("could not send the failure reply for %s", request.method,
                          extra=_ids(request, self.target))


def _ids(request: Request, target: Target) -> dict[str, Any]:
    """The ids a log line about a request carries (see relaybus.cli.logs)."""
    return {"msg_id": request.msg_id, "unique_id": request.unique_id, "method": request.method,
            "topic": target.topic, "server": target.server}


async def _raise(exc: BaseException) -> Any:
    raise exc


async def _send_heartbeats(incoming: IncomingRequest, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await incoming.heartbeat()
        except MessagingError as exc:  # the final reply will say what happened, or not
            LOG.info("heartbeat for %s not sent: %s", incoming.request.msg_id, exc)
