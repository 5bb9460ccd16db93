"""Turning received bytes into requests and replies, once for every driver.

Every transport receives bodies from a broker that other programs can also write to, so
every received request goes through the same checks, in this order, before any endpoint
method runs:

1. **Size**, before decoding: a body over ``max_message_size`` is refused unread.
2. **Shape**: the envelope and the request object (:func:`relaybus.message.parse_request`).
3. **Reply address**: a call's ``_reply_q`` (and, on transports that have one, the
   transport-level reply address such as a NATS reply subject) must be of the kind the
   transport's own clients use for replies (:class:`ReplyAddressRule`). Anything else is
   refused: a server never publishes where a request tells it to unless that place is a
   reply inbox. This keeps a requester from aiming a server's replies (sent with the
   server's credentials) at a stream's control subject or at another service's queue.
4. **Duplicates**: a repeated ``_unique_id`` is dropped (oslo.messaging's rule).

A refusal is logged (at most once per :data:`LOG_INTERVAL` per reason, with the count
since) and counted in :attr:`Intake.refused`; a malformed call whose reply address is
acceptable also gets a ``MalformedMessage`` failure reply at once, so its caller does not
wait for its timeout. Replies go through :meth:`Intake.reply` (size checked, then parsed).
"""

from __future__ import annotations

import collections
import logging
import re
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from relaybus.errors import MalformedMessage
from relaybus.message import (
    DuplicateFilter,
    Reply,
    Request,
    pack,
    parse_reply,
    parse_request,
    refusal,
    unpack,
)

LOG = logging.getLogger(__name__)

#: seconds between two log lines about refusals of the same reason
LOG_INTERVAL = 10.0

TOO_LARGE = "too-large"
MALFORMED = "malformed"
REPLY_ADDRESS = "reply-address"


class ReplyAddressRule:
    """Which reply addresses a transport's servers publish to.

    Args:
        pattern: a regular expression the whole address must match.
        description: what the rule allows, in words, for log lines and errors.
    """

    __slots__ = ("_pattern", "description")

    def __init__(self, pattern: str, description: str) -> None:
        self._pattern = re.compile(pattern)
        self.description = description

    def allows(self, address: str) -> bool:
        """Whether a reply may be published to ``address``."""
        return self._pattern.fullmatch(address) is not None


#: oslo.messaging's (and relaybus's) reply queues: ``reply_`` and 32 lower-case hex digits.
AMQP_REPLY_QUEUE = ReplyAddressRule(r"reply_[0-9a-f]{32}",
                                    "a reply queue named reply_<32 hex digits>")


class Refused(NamedTuple):
    """A request that was refused; ``answer`` is ``(reply address, body)`` to send, if any."""

    reason: str
    detail: str
    answer: tuple[str, bytes] | None


class _RateLimitedLog:
    """One warning per reason and interval, with how many were refused since the last."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._since: collections.Counter[str] = collections.Counter()

    def __call__(self, reason: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        self._since[reason] += 1
        last = self._last.get(reason)
        if last is not None and now - last < self._interval:
            return
        self._last[reason] = now
        count, self._since[reason] = self._since[reason], 0
        suffix = f" ({count} refused for this reason since the last report)" if count > 1 else ""
        LOG.warning("%s%s", message % args, suffix)


class Intake:
    """The received-message checks of one driver (see the module docstring).

    Args:
        transport: the transport's name, for log lines (``"rabbit"``).
        max_message_size: the largest body accepted, in bytes.
        reply_rule: the reply addresses a server may publish to.
    """

    def __init__(self, transport: str, max_message_size: int,
                 reply_rule: ReplyAddressRule) -> None:
        self.transport = transport
        self.max_message_size = max_message_size
        self.reply_rule = reply_rule
        #: how many received messages were refused, by reason
        self.refused: collections.Counter[str] = collections.Counter()
        self._log = _RateLimitedLog(LOG_INTERVAL)
        #: the last reply address that passed the rule (one caller sends many calls)
        self._allowed: str | None = None

    def _refuse(self, reason: str, source: str, detail: str,
                answer: tuple[str, bytes] | None = None) -> Refused:
        self.refused[reason] += 1
        self._log(reason, "%s: refusing a request from %s (%s): %s", self.transport, source,
                  reason, detail)
        return Refused(reason, detail, answer)

    def check_size(self, body: bytes, size: int | None = None) -> str | None:
        """A refusal detail when ``body`` (or the ``size`` the transport announced for it,
        where it dropped the body unread) is over the limit, else None."""
        size = len(body) if size is None else max(size, len(body))
        if size > self.max_message_size:
            return (f"a body of {size} bytes exceeds max_message_size "
                    f"of {self.max_message_size} bytes")
        return None

    def request(self, body: bytes, source: str, *, reply_to: str | None = None,
                size: int | None = None) -> Request | Refused:
        """Check a received request body (size, shape, reply address).

        Args:
            body: the bytes as received.
            source: where it came from (queue or subject), for log lines.
            reply_to: the transport-level reply address, where the transport has one
                (a NATS message's reply subject); it must pass the reply rule too.
            size: the body's size as the transport announced it, where the transport
                dropped an oversized body without assembling it.

        Returns:
            The request, or a :class:`Refused` (logged and counted) with the failure reply
            to send, if any.
        """
        # the length compared here first: check_size's frame only for what may be refused
        too_large = (self.check_size(body, size)
                     if size is not None or len(body) > self.max_message_size else None)
        if too_large is not None:
            return self._refuse(TOO_LARGE, source, too_large)
        message: dict[str, Any] = {}
        try:
            message = unpack(body)
            request = parse_request(message)
        except MalformedMessage as exc:
            return self._refuse(MALFORMED, source, f"{exc} ({len(body)} bytes)",
                                self._refusal_answer(message, exc, reply_to))
        # a cast's _reply_q is never used, so only a call's is checked (and an address
        # that is both, as on NATS, once)
        reply_q = request.reply_q if request.msg_id is not None else None
        if reply_to is None or reply_to == reply_q:
            if reply_q is None or reply_q == self._allowed:  # a caller's next call, mostly
                return request
            reply_to = None
        bad = self._bad_reply_address(reply_q, reply_to)
        if bad is not None:
            return self._refuse(REPLY_ADDRESS, source, bad)
        if reply_to is None:
            self._allowed = reply_q  # passed the rule: the same address needs no new match
        return request

    def is_duplicate(self, request: Request, duplicates: DuplicateFilter, source: str) -> bool:
        """Whether ``request`` repeats a recent ``_unique_id`` (then it is logged)."""
        if not duplicates.is_duplicate(request.unique_id):
            return False
        LOG.info("%s: dropping a duplicate request (_unique_id %s) from %s", self.transport,
                 request.unique_id, source)
        return True

    def _bad_reply_address(self, reply_q: str | None, reply_to: str | None) -> str | None:
        for address in (reply_q, reply_to):
            if address is not None and (not isinstance(address, str)
                                        or not self.reply_rule.allows(address)):
                return (f"reply address {address[:80]!r} is not "
                        f"{self.reply_rule.description}")
        return None

    def _refusal_answer(self, message: Mapping[str, Any], exc: MalformedMessage,
                        reply_to: str | None) -> tuple[str, bytes] | None:
        answer = refusal(message, exc)
        if answer is None:
            return None
        reply_q, reply = answer
        if self._bad_reply_address(reply_q, reply_to) is not None:
            return None
        return reply_q, pack(reply)

    def reply(self, body: bytes, source: str, size: int | None = None) -> Reply | None:
        """Check a received reply body; None (logged, counted) when it is refused."""
        too_large = (self.check_size(body, size)
                     if size is not None or len(body) > self.max_message_size else None)
        if too_large is not None:
            self.refused[TOO_LARGE] += 1
            self._log(TOO_LARGE, "%s: dropping a reply on %s: %s", self.transport, source,
                      too_large)
            return None
        try:
            return parse_reply(unpack(body))
        except MalformedMessage as exc:
            self.refused[MALFORMED] += 1
            self._log(MALFORMED, "%s: dropping a malformed reply on %s (%d bytes): %s",
                      self.transport, source, len(body), exc)
            return None

    def received(self, body: bytes, source: str, what: str, size: int | None = None) -> bool:
        """Whether a received notification (or other) body is within the size limit."""
        too_large = self.check_size(body, size)
        if too_large is None:
            return True
        self.refused[TOO_LARGE] += 1
        self._log(TOO_LARGE, "%s: refusing a %s from %s: %s", self.transport, what, source,
                  too_large)
        return False
