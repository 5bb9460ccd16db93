"""How relaybus names map onto NATS subjects, queue groups, streams and consumers.

Every relaybus name (exchange, topic, server, pool) becomes exactly one subject token, so
subjects never collide however names use dots: ``%``, ``.``, ``*`` and ``>`` are
percent-escaped (``host1.example.com`` -> ``host1%2Eexample%2Ecom``); names cannot hold
whitespace (Target refuses it). With the default prefix ``relaybus``:

=================================  ==================================================
what                               subject (queue group)
=================================  ==================================================
call/cast to a topic               ``relaybus.<exchange>.rpc.<topic>`` (``rpc``)
call/cast to one server            ``relaybus.<exchange>.rpc.<topic>.<server>`` (``rpc``)
fanout cast                        ``relaybus.<exchange>.fanout.<topic>`` (none)
notification                       ``relaybus.<exchange>.notify.<topic>.<priority>``
replies, cast confirmations        ``<inbox_prefix>.<bus id>.<msg id>``
=================================  ==================================================

JetStream names cannot hold dots, so streams and consumers use name *parts*: a name made
only of ``[A-Za-z0-9-]`` is used as it is, any other is reduced to those characters and
suffixed with 8 hex digits of its SHA-1. Parts never contain ``_``, which joins them, so
joined names are unambiguous: stream ``relaybus_openstack_notifications`` holds
``relaybus.openstack.notify.notifications.*``; the consumer of pool P for priority ``info``
is ``P_info``, the default pool's is just ``info``.
"""

from __future__ import annotations

import hashlib
import re

from relaybus.errors import InvalidTarget
from relaybus.target import Target

RPC_QUEUE_GROUP = "rpc"
_CACHE_SIZE = 1024

_ESCAPES = {"%": "%25", ".": "%2E", "*": "%2A", ">": "%3E"}
_ESCAPE_RE = re.compile(r"[%.*>]")
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}
_UNESCAPE_RE = re.compile(r"%(25|2E|2A|3E)")
_SIMPLE_PART_RE = re.compile(r"^[A-Za-z0-9-]+$")
_NOT_PART_CHARS_RE = re.compile(r"[^A-Za-z0-9-]+")
_SPACE_RE = re.compile(r"[\s\x00-\x1f\x7f]")


def token(name: str) -> str:
    """One subject token for ``name`` (percent-escaping ``% . * >``)."""
    if _SPACE_RE.search(name) or not name:
        raise InvalidTarget(f"{name!r} cannot be used in a NATS subject")
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], name)


def untoken(text: str) -> str:
    """The name a subject token stands for (the inverse of :func:`token`)."""
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPES[m.group()], text)


def name_part(name: str) -> str:
    """A stream/consumer-name part for ``name``: itself if simple, else cleaned + hash."""
    if _SIMPLE_PART_RE.match(name):
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    cleaned = _NOT_PART_CHARS_RE.sub("-", name).strip("-")[:48]
    return f"{cleaned}-{digest}" if cleaned else digest


def is_literal_subject(subject: str) -> bool:
    """Whether ``subject`` can be published to: non-empty tokens, no wildcards or spaces.

    Reply subjects come from the wire; publishing to a wildcard makes the NATS server
    answer ``-ERR``, which nats-py treats as fatal to the connection, so a hostile
    ``_reply_q`` must be refused before it reaches ``publish``.
    """
    if not subject or len(subject) > 1024 or _SPACE_RE.search(subject):
        return False
    return all(part and part not in ("*", ">") for part in subject.split("."))


class Naming:
    """The subjects and JetStream names of one bus, under its ``subject_prefix``."""

    def __init__(self, prefix: str, control_exchange: str) -> None:
        self.prefix = prefix
        self.control_exchange = control_exchange
        self._prefix_part = name_part(prefix)
        self._rpc_subjects: dict[Target, str] = {}  # a client sends to few targets
        self._notification_subjects: dict[tuple[Target, str], str] = {}
        self._streams: dict[Target, tuple[str, str]] = {}

    def _exchange(self, target: Target) -> str:
        return token(target.exchange or self.control_exchange)

    # -- RPC -----------------------------------------------------------------------

    def rpc_subject(self, target: Target) -> str:
        """Where a request to ``target`` goes (topic, topic.server or fanout)."""
        subject = self._rpc_subjects.get(target)
        if subject is None:
            if len(self._rpc_subjects) >= _CACHE_SIZE:
                self._rpc_subjects.clear()
            subject = self._rpc_subjects[target] = self._rpc_subject(target)
        return subject

    def _rpc_subject(self, target: Target) -> str:
        assert target.topic is not None
        if target.fanout:
            return self.fanout_subject(target)
        subject = f"{self.prefix}.{self._exchange(target)}.rpc.{token(target.topic)}"
        if target.server:
            subject += f".{token(target.server)}"
        return subject

    def fanout_subject(self, target: Target) -> str:
        assert target.topic is not None
        return f"{self.prefix}.{self._exchange(target)}.fanout.{token(target.topic)}"

    def server_subjects(self, target: Target) -> list[tuple[str, str]]:
        """(subject, queue group) pairs a server on ``target`` subscribes to."""
        assert target.topic is not None
        topic = target.replace(server=None, fanout=False)
        subjects = [(self.rpc_subject(topic), RPC_QUEUE_GROUP), (self.fanout_subject(topic), "")]
        if target.server is not None:
            subjects.insert(1, (self.rpc_subject(topic.replace(server=target.server)),
                                RPC_QUEUE_GROUP))
        return subjects

    def tap_subjects(self, target: Target) -> list[str]:
        """Plain subscriptions that see every request and notification of a topic."""
        assert target.topic is not None
        base = f"{self.prefix}.{self._exchange(target)}"
        topic = token(target.topic)
        return [f"{base}.rpc.{topic}", f"{base}.rpc.{topic}.*", f"{base}.fanout.{topic}",
                f"{base}.notify.{topic}.*"]

    def describe(self, subject: str) -> tuple[str, str]:
        """(exchange, routing key) of one of our subjects, as the rabbit topology names
        them: ``(exchange, topic[.server])``, ``(topic_fanout, topic)``,
        ``(exchange, topic.priority)``."""
        tokens = [untoken(t) for t in subject[len(self.prefix) + 1:].split(".")]
        exchange, kind, rest = tokens[0], tokens[1], tokens[2:]
        if kind == "fanout":
            return f"{rest[0]}_fanout", rest[0]
        return exchange, ".".join(rest)

    # -- notifications ---------------------------------------------------------------

    def notification_subject(self, target: Target, priority: str) -> str:
        key = (target, priority)
        subject = self._notification_subjects.get(key)
        if subject is None:
            assert target.topic is not None
            if len(self._notification_subjects) >= _CACHE_SIZE:
                self._notification_subjects.clear()
            subject = self._notification_subjects[key] = (
                f"{self.prefix}.{self._exchange(target)}.notify.{token(target.topic)}"
                f".{token(priority)}")
        return subject

    def stream(self, target: Target) -> tuple[str, str]:
        """The stream (name, subject filter) that keeps the notifications of a topic."""
        found = self._streams.get(target)
        if found is None:
            if len(self._streams) >= _CACHE_SIZE:
                self._streams.clear()
            found = self._streams[target] = self._stream(target)
        return found

    def _stream(self, target: Target) -> tuple[str, str]:
        assert target.topic is not None
        exchange = target.exchange or self.control_exchange
        name = f"{self._prefix_part}_{name_part(exchange)}_{name_part(target.topic)}"
        subjects = (f"{self.prefix}.{self._exchange(target)}.notify."
                    f"{token(target.topic)}.*")
        return name, subjects

    @staticmethod
    def consumer(pool: str | None, priority: str) -> str:
        """The durable consumer of ``pool`` (None: the default pool) for a priority."""
        return priority if pool is None else f"{name_part(pool)}_{priority}"

    @staticmethod
    def queue_group(pool: str | None) -> str:
        """The queue group of a pool, for core-NATS notifications."""
        return "_default" if pool is None else name_part(pool)
