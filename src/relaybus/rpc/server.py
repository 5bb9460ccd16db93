"""The RPC server: takes requests for a target and answers them from its endpoints."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from typing import Any

from relaybus import telemetry
from relaybus.delivery import DeliveryPolicy
from relaybus.delivery.casts import CastDelivery
from relaybus.errors import InvalidTarget, MessageTooLarge, MessagingError, ServerError
from relaybus.lifecycle import Consuming
from relaybus.message import Request
from relaybus.rpc.dispatcher import RPCAccessPolicy, RPCDispatcher
from relaybus.rpc.remote_errors import serialize_exception
from relaybus.rpc.signature import signature_of
from relaybus.serializer import JsonPayloadSerializer, Serializer
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
        self.dispatcher = RPCDispatcher(endpoints, access_policy)
        self._driver = driver
        self._serializer = serializer or JsonPayloadSerializer()
        self._casts = CastDelivery(driver, target, delivery)

    async def _subscribe(self) -> Subscription:
        return await self._driver.listen(self.target, self._on_request)

    async def _on_request(self, incoming: IncomingRequest) -> None:
        await self.executor.submit(lambda: self._handle(incoming))

    async def _handle(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        with telemetry.handling(self.target.topic or "", request.context,
                                request.expects_reply) as labels:
            await self._dispatch(incoming, labels)

    async def _dispatch(self, incoming: IncomingRequest, labels: dict[str, str]) -> None:
        request = incoming.request
        heartbeats = None
        try:
            context = dict(request.context)
            context["client_timeout"] = request.timeout  # as oslo.messaging servers do
            ctxt = self._serializer.deserialize_context(context)
            method = self.dispatcher.resolve(request.method, request.namespace, request.version)
            labels["method"] = request.method
            signature = signature_of(method)
            args = signature.convert_arguments(
                {k: self._serializer.deserialize_entity(ctxt, v) for k, v in request.args.items()})
            if request.expects_reply and request.timeout \
                    and request.timeout >= MIN_HEARTBEAT_TIMEOUT:
                heartbeats = asyncio.get_running_loop().create_task(
                    _send_heartbeats(incoming, request.timeout / 2),
                    name=f"relaybus.rpc.heartbeat[{request.msg_id}]")
            if request.expects_reply:
                result = await self.executor.run(method, ctxt, **args)
            else:
                result = await self._casts.run(request, lambda: self.executor.run(
                    method, ctxt, **args))
            result = self._serializer.serialize_entity(ctxt, signature.convert_result(result))
        except asyncio.CancelledError:
            await self._fail(incoming, ServerError("the server stopped before the call finished"))
            raise
        except Exception as exc:  # noqa: BLE001 - every endpoint error goes to the caller
            labels["error"] = type(getattr(exc, "cause", exc)).__name__  # a cast's last error
            await self._fail(incoming, exc)
            return
        finally:
            if heartbeats is not None:
                heartbeats.cancel()
        try:
            await incoming.reply(result=result)
        except (TypeError, MessageTooLarge) as exc:
            labels["error"] = type(exc).__name__
            await self._fail(incoming, exc)
        except MessagingError as exc:  # the transport failed: the caller will time out
            labels["error"] = type(exc).__name__
            LOG.warning("could not send the reply to %s: %s: %s", request.method,
                        type(exc).__name__, exc, extra=_ids(request, self.target))

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


async def _send_heartbeats(incoming: IncomingRequest, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await incoming.heartbeat()
        except MessagingError as exc:  # the final reply will say what happened, or not
            LOG.info("heartbeat for %s not sent: %s", incoming.request.msg_id, exc)
