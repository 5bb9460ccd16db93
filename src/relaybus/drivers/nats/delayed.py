"""Delayed messages on NATS: a JetStream stream of waiting messages, moved when due.

NATS 2.9 has no delayed delivery, so a delayed cast or notification is stored (with
JetStream's acknowledgement, so a stored one survives the sender and a server restart) in
the exchange's delay stream ``<prefix>_<exchange>_delayed_messages`` on the subject
``<prefix>.<exchange>.delayed.<topic>.<kind>`` (kind ``rpc`` for casts, ``notify`` for
notifications), with headers ``Relaybus-Due`` (Unix time in ms) and ``Relaybus-Subject``
(where it goes when due). The stream is a work queue: a message leaves it once moved.

Who moves them: every RPC server of the topic (kind ``rpc``) and every JetStream listener
of the topic (kind ``notify``) pulls the durable consumer ``<topic>_<kind>`` of that
stream, shared by all of them. A message pulled before it is due is given back with
``NakWithDelay`` for the time left, so the server itself holds it and redelivers it when
due, to whichever mover is pulling then (a mover restarted meanwhile loses nothing). A due
message is published to its subject (a cast to the topic's subject, a notification into
its topic's stream, deduplicated by its message id) and only then acknowledged: a mover
that dies in between leaves it to be moved again (a cast may then arrive twice; a
notification is stored once within ``duplicate_window``). A delayed message waits for as
long as no mover runs, and is moved as soon as one starts.

A mover only publishes to subjects of its own topic: a message in the delay stream naming
another subject is terminated with a log line.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from relaybus.drivers.nats.connection import Connection, translate, translated
from relaybus.drivers.nats.consumers import PullConsumer
from relaybus.drivers.nats.naming import Naming, name_part, token
from relaybus.drivers.nats.notifications import settle
from relaybus.drivers.nats.options import NatsOptions
from relaybus.message import new_unique_id
from relaybus.target import Target

LOG = logging.getLogger(__name__)

DUE_HEADER = "Relaybus-Due"
SUBJECT_HEADER = "Relaybus-Subject"
MESSAGE_ID_HEADER = "Relaybus-Message-Id"
MSG_ID_HEADER = "Nats-Msg-Id"
MAX_DELAY = 30 * 24 * 3600.0
#: a mover's consumer is removed by the server after this long without a mover
MOVER_INACTIVE = 3600.0
#: pause before moving a message again after its destination refused it
RETRY_MOVE = 1.0
_STREAM_EXISTS = 10058

#: publishes a due message: (destination subject, body, message id or None)
Mover = Callable[[str, bytes, str | None], Awaitable[None]]


class Delays:
    """The delay stream of one bus: storing delayed messages and moving due ones."""

    def __init__(self, connection: Connection, naming: Naming, options: NatsOptions) -> None:
        self._connection = connection
        self._naming = naming
        self._options = options
        self._streams: set[str] = set()

    def stream(self, target: Target) -> tuple[str, str]:
        """(name, subjects) of the delay stream of a target's exchange."""
        exchange = target.exchange or self._naming.control_exchange
        name = f"{name_part(self._naming.prefix)}_{name_part(exchange)}_delayed_messages"
        return name, f"{self._naming.prefix}.{token(exchange)}.delayed.>"

    def subject(self, target: Target, kind: str) -> str:
        assert target.topic is not None
        exchange = token(target.exchange or self._naming.control_exchange)
        return f"{self._naming.prefix}.{exchange}.delayed.{token(target.topic)}.{kind}"

    async def ensure_stream(self, target: Target) -> str:
        name, subjects = self.stream(target)
        if name in self._streams:
            return name
        config = api.StreamConfig(
            name=name, subjects=[subjects], retention=api.RetentionPolicy.WORK_QUEUE,
            storage=api.StorageType(self._options.stream_storage),
            num_replicas=self._options.stream_replicas,
            duplicate_window=self._options.duplicate_window)
        jsm = self._connection.client.jsm(prefix=self._options.jetstream_api_prefix,
                                          timeout=self._options.send_timeout)
        try:
            await jsm.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != _STREAM_EXISTS:
                raise translate(exc, f"creating the delay stream {name}") from exc
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise translate(exc, f"creating the delay stream {name}") from exc
        self._streams.add(name)
        return name

    async def store(self, target: Target, kind: str, destination: str, body: bytes,
                    delay: float, message_id: str | None) -> None:
        """Store a message to be published to ``destination`` ``delay`` seconds from now."""
        await self.ensure_stream(target)
        headers = {DUE_HEADER: str(int((time.time() + delay) * 1000) + 1),
                   SUBJECT_HEADER: destination, MSG_ID_HEADER: new_unique_id()}
        if message_id is not None:
            headers[MESSAGE_ID_HEADER] = message_id
        js = self._connection.client.jetstream(prefix=self._options.jetstream_api_prefix,
                                               timeout=self._options.send_timeout)
        subject = self.subject(target, kind)
        with translated(f"storing a delayed message on {subject}"):
            await js.publish(subject, body, headers=headers,
                             timeout=self._options.send_timeout)

    async def mover(self, target: Target, kind: str, allowed: Callable[[str], bool],
                    move: Mover) -> PullConsumer:
        """Start pulling the topic's delayed messages of ``kind``, publishing due ones."""
        stream = await self.ensure_stream(target)
        assert target.topic is not None
        durable = f"{name_part(target.topic)}_{kind}"
        config = api.ConsumerConfig(
            durable_name=durable, ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL, filter_subject=self.subject(target, kind),
            ack_wait=self._options.ack_wait, max_deliver=-1,
            inactive_threshold=MOVER_INACTIVE)
        jsm = self._connection.client.jsm(prefix=self._options.jetstream_api_prefix,
                                          timeout=self._options.send_timeout)
        with translated(f"creating the delay consumer {durable} on {stream}"):
            try:
                await jsm.add_consumer(stream, config)
            except nats.js.errors.BadRequestError:
                await jsm.consumer_info(stream, durable)  # exists with other settings

        async def on_delayed(msg: Msg) -> None:
            await _move_if_due(msg, allowed, move)

        async def recover() -> None:
            self._streams.discard(stream)
            await self.ensure_stream(target)
            with translated(f"creating the delay consumer {durable} on {stream}"):
                await jsm.add_consumer(stream, config)

        puller = PullConsumer(
            self._connection, self._options.jetstream_api_prefix, stream, durable, on_delayed,
            recover, batch=self._options.fetch_batch, heartbeat=self._options.idle_heartbeat,
            name=f"relaybus[nats].delayed[{stream}/{durable}]")
        with translated(f"moving delayed messages of {stream}/{durable}"):
            await puller.start()
        return puller


async def _move_if_due(msg: Msg, allowed: Callable[[str], bool], move: Mover) -> None:
    headers = msg.headers or {}
    destination = headers.get(SUBJECT_HEADER, "")
    try:
        due = int(headers.get(DUE_HEADER, "")) / 1000
    except ValueError:
        due = None
    if due is None or not allowed(destination):
        LOG.warning("dropping a delayed message on %s: it names no due time or a subject "
                    "outside its topic (%r)", msg.subject, destination[:80])
        await settle(msg, "term")
        return
    left = due - time.time()
    if left > 0:
        try:
            await msg.nak(delay=left)
        except (nats.errors.Error, OSError) as exc:
            LOG.info("could not give back a delayed message (redelivered after ack_wait): "
                     "%s", exc)
        return
    try:
        await move(destination, msg.data, headers.get(MESSAGE_ID_HEADER))
    except Exception as exc:  # noqa: BLE001 - kept in the stream and moved again
        LOG.warning("could not move a due message to %s (trying again in %.0f s): %s",
                    destination, RETRY_MOVE, exc)
        with contextlib.suppress(nats.errors.Error, OSError):
            await msg.nak(delay=RETRY_MOVE)
        return
    await settle(msg, "ack")
