"""Showing the notifications a topic's stream holds, and removing chosen ones.

A topic's stream keeps its notifications (limits retention), whether or not a listener
acknowledged them, so on JetStream "stored" means "in the stream": the visit reads each
message of the topic's subjects by sequence (the stream's ``MSG.GET``, ``next_by_subj``),
up to the last sequence when the visit began, and deletes (``MSG.DELETE``) the ones the
visitor removes.
"""

from __future__ import annotations

import logging

import nats.errors
import nats.js.errors

from relaybus.drivers.nats.connection import Connection, translate
from relaybus.drivers.nats.naming import Naming, untoken
from relaybus.drivers.nats.options import NatsOptions
from relaybus.errors import MalformedMessage
from relaybus.message import unpack
from relaybus.target import Target
from relaybus.transport.base import NotificationVisitor

LOG = logging.getLogger(__name__)


async def visit_stream(connection: Connection, naming: Naming, options: NatsOptions,
                       stream: str, target: Target, visit: NotificationVisitor) -> int:
    """Visit the notifications of ``target`` that ``stream`` holds now, oldest first."""
    jsm = connection.client.jsm(prefix=options.jetstream_api_prefix,
                                timeout=options.send_timeout)
    _, subjects = naming.stream(target)
    try:
        info = await jsm.stream_info(stream)
        last = int(info.state.last_seq or 0)
        seq = max(1, int(info.state.first_seq or 1))
        visited = 0
        while seq <= last:
            try:
                raw = await jsm.get_msg(stream, seq, subjects, next=True)
            except nats.js.errors.NotFoundError:
                break
            if raw.seq is None or raw.seq > last:
                break
            seq = raw.seq + 1
            try:
                message = unpack(raw.data or b"")
            except MalformedMessage:
                continue
            visited += 1
            priority = untoken((raw.subject or "").rpartition(".")[2])
            if await visit(priority, message):
                await jsm.delete_msg(stream, raw.seq)
        return visited
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise translate(exc, f"reading stream {stream}") from exc
