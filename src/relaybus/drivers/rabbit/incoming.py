"""What a server or listener receives: requests it answers, notifications it settles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from relaybus.drivers.rabbit.acks import AckBatcher
from relaybus.message import Notification, Request, build_reply, pack
from relaybus.transport.base import IncomingNotification, IncomingRequest

ReplySender = Callable[[str, bytes], Awaitable[None]]


class RabbitRequest(IncomingRequest):
    """A request taken from an RPC queue; replies go to the caller's ``_reply_q``.

    Args:
        request: the decoded request.
        send_reply: ``send_reply(reply_queue, body)`` publishes a reply (never raises for
            a lost connection; it logs).
        check_size: raises MessageTooLarge for a reply over the bus's limit.
    """

    __slots__ = ("_check_size", "_send_reply", "request")

    def __init__(self, request: Request, send_reply: ReplySender,
                 check_size: Callable[[bytes], bytes]) -> None:
        self.request = request
        self._send_reply = send_reply
        self._check_size = check_size

    async def reply(self, result: Any = None, failure: dict[str, Any] | None = None) -> None:
        request = self.request
        if request.msg_id is None or request.reply_q is None:
            return
        body = self._check_size(pack(build_reply(request.msg_id, result, failure)))
        await self._send_reply(request.reply_q, body)

    async def heartbeat(self) -> None:
        request = self.request
        if request.msg_id is None or request.reply_q is None:
            return
        await self._send_reply(request.reply_q, pack(build_reply(request.msg_id, ending=False)))


#: ``retry(delay, context)``: publish (confirmed) the notification again into a delay
#: queue that dead-letters into the queue it came from
Retry = Callable[[float, Mapping[str, Any]], Awaitable[None]]


class RabbitNotification(IncomingNotification):
    """A notification taken from a listener's queue; it stays unacknowledged until settled."""

    __slots__ = ("_acks", "_deliveries", "_retry", "_settled", "_tag", "notification")

    def __init__(self, notification: Notification, acks: AckBatcher, tag: int,
                 retry: Retry | None = None, deliveries: int | None = None) -> None:
        self.notification = notification
        self._acks = acks
        self._tag = tag
        self._retry = retry
        self._deliveries = deliveries
        self._settled = False

    @property
    def deliveries(self) -> int | None:
        """Deliveries of this copy, this one included, where the queue counts them (a
        quorum queue's ``x-delivery-count`` on a redelivery); None elsewhere."""
        return self._deliveries

    async def acknowledge(self) -> None:
        if not self._settled:
            self._settled = True
            self._acks.ack(self._tag)

    async def requeue(self) -> None:
        if not self._settled:
            self._settled = True
            self._acks.reject(self._tag, requeue=True)

    async def retry_later(self, delay: float, context: Mapping[str, Any]) -> bool:
        """Publish it into a delay queue (confirmed), and only then acknowledge this one."""
        if self._retry is None or self._settled:
            return False
        await self._retry(delay, context)
        await self.acknowledge()
        return True
