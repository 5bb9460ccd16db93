"""An in-process broker with RabbitMQ's routing model: exchanges, bound queues, consumers.

Every bus connected to ``memory://NAME`` in one process shares the broker of that NAME
(``memory://`` is the default one). Bodies are bytes, so everything a driver sends was
really encoded. Consumers may live on different event loops (the sync facade runs its
own): deliveries cross loops with ``call_soon_threadsafe`` and broker state is guarded by a
lock.

A body published on the loop of an idle consumer is handled inside the publish, in the
consumer's own context, as a broker hands a delivery to a waiting channel at once: the
handler checks it and hands it off (an RPC server starts the request's task) without a
task switch in between, so a call costs the loop two turns (the server's task, then the
caller), like a bare request/reply over an ``asyncio.Queue``. Bodies that arrive while the
consumer is busy, or from another loop, wait in its inbox for its task, in order.

Nothing grows without bound. A consumer holds at most :data:`CONSUMER_PREFETCH` bodies
(received, not yet handled), like a channel's prefetch; the rest waits in its queue. A
queue that no consumer takes from holds at most :attr:`QueueLimits.max_queue_length`
bodies, and every queue (taps included) at most :attr:`QueueLimits.max_queue_bytes` bytes,
like a RabbitMQ queue with ``x-max-length``, ``x-max-length-bytes`` and ``overflow:
drop-head``: when a new body would exceed a limit the oldest waiting ones are dropped.
Drops are counted per queue (:meth:`MemoryBroker.dropped`) and reported in one log line per
queue per :data:`DROP_LOG_INTERVAL` seconds, never one per message.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import dataclasses
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from relaybus.errors import InvalidTransportURL
from relaybus.transport.options import option_values

DEFAULT_EXCHANGE = ""
LOG = logging.getLogger(__name__)

#: Bodies a consumer holds at most (received, not yet handled); the rest wait in the queue.
CONSUMER_PREFETCH = 256
#: Seconds between two log lines about the drops of one queue.
DROP_LOG_INTERVAL = 60.0

#: A consumer's handler: None when done with the body, else an awaitable for the rest.
Handler = Callable[[Any], Awaitable[None] | None]


@dataclasses.dataclass(frozen=True)
class QueueLimits:
    """How much every queue of a broker may hold (``memory://NAME?max_queue_length=...``).

    Attributes:
        max_queue_length: bodies waiting in a queue that no consumer takes from
            (RabbitMQ's ``x-max-length``); a queue with consumers keeps a burst of any length.
        max_queue_bytes: bytes of bodies waiting in any queue (``x-max-length-bytes``).
    """

    max_queue_length: int = 10_000
    max_queue_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_queue_length < 1 or self.max_queue_bytes < 1:
            raise ValueError("max_queue_length and max_queue_bytes must be at least 1")


def queue_limits_from(url: str, options: dict[str, Any]) -> QueueLimits | None:
    """The limits the memory URL's options ask for; None when they name none.

    Raises:
        InvalidTransportURL: an unknown option (the memory transport has no other), or a
            value that is not a positive integer.
    """
    values = option_values(QueueLimits, url, options, "memory")
    if not values:
        return None
    try:
        return QueueLimits(**values)
    except ValueError as exc:
        raise InvalidTransportURL(url, str(exc)) from None


def _size(body: Any) -> int:
    """The bytes a queued item holds: a body, or a tap's (exchange, key, body)."""
    return len(body[2]) if isinstance(body, tuple) else len(body)


class Consumer:
    """One consumer of one queue: bodies handed to a handler on the consumer's loop.

    ``handler(body)`` is a plain function: it returns None when it is done with the body,
    or an awaitable for the rest of the work (which the consumer's task then awaits before
    the next body). A body that reaches an idle consumer on its own loop is handled at
    once, inside the publish, with no task switch (as an idle channel's consumer gets a
    delivery straight away); one that arrives while the consumer is busy, from another
    loop, or while a handler's awaitable is pending waits in the inbox, in order, for the
    consumer's task. The handler always runs in the consumer's own context (a copy of the
    one it was started in), never the publisher's.
    """

    def __init__(self, queue: Queue, handler: Handler, name: str) -> None:
        self.queue = queue
        self.handler = handler
        self.loop = asyncio.get_running_loop()
        self.context = contextvars.copy_context()
        self.inbox: collections.deque[tuple[Any, Awaitable[None] | None]] = \
            collections.deque()
        self.held = 0  # delivered to this consumer and not yet handled; under the broker lock
        # True while a body is being handled or the inbox has work: deliveries queue up
        self._busy = False
        self._stopping = False
        self._wakeup: asyncio.Future[None] | None = None
        self.task = self.loop.create_task(self._pump(), name=name, context=self.context)

    @property
    def has_room(self) -> bool:
        return self.held < CONSUMER_PREFETCH

    def deliver(self, body: Any) -> None:
        """Take one body (the broker holds its lock)."""
        self.held += 1
        if asyncio._get_running_loop() is self.loop:
            self._arrive(body, False)
        else:
            self.loop.call_soon_threadsafe(self._arrive, body, True)

    def _arrive(self, body: Any, settle: bool) -> None:
        """On the consumer's loop: handle the body now if idle, else queue it."""
        if self._busy:
            self._queue(body, None)
            return
        self._busy = True
        try:
            pending = self.context.run(self.handler, body)
        except Exception:  # one message must never stop a consumer
            LOG.exception("consumer %s could not handle a message; dropped it",
                          self.task.get_name())
            pending = None
        if pending is not None:  # the rest waits for the task (and so do later bodies)
            self._queue(None, pending)
            return
        self._busy = bool(self.inbox)  # bodies it published to itself wait for the task
        if settle:
            self.queue.broker.settled(self)
        else:  # inside the queue's dispatch, under the broker lock
            self.held -= 1

    def _queue(self, body: Any, pending: Awaitable[None] | None) -> None:
        self._busy = True
        self.inbox.append((body, pending))
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _pump(self) -> None:
        inbox = self.inbox
        while True:
            if not inbox:
                self._busy = False
                if self._stopping:
                    return
                self._wakeup = self.loop.create_future()
                await self._wakeup
                continue
            body, pending = inbox.popleft()
            try:
                if pending is None:
                    pending = self.handler(body)
                if pending is not None:
                    await pending
            except Exception:  # one message must never stop a consumer
                LOG.exception("consumer %s could not handle a message; dropped it",
                              self.task.get_name())
            finally:
                self.queue.broker.settled(self)

    def _stop_marker(self) -> None:
        self._stopping = True
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def stop(self) -> None:
        """Leave the queue; hand what the inbox holds to the handler, then end."""
        self.queue.broker.cancel(self)
        # call_soon: a delivery another thread scheduled before the cancel must still
        # land before the end.
        self.loop.call_soon(self._stop_marker)
        await self.task


class Queue:
    """A named queue: bodies wait here while its consumers are busy or absent (bounded)."""

    def __init__(self, broker: MemoryBroker, name: str, auto_delete: bool) -> None:
        self.broker = broker
        self.name = name
        self.auto_delete = auto_delete
        self.waiting: collections.deque[bytes] = collections.deque()
        self.waiting_bytes = 0
        self.consumers: list[Consumer] = []
        self._turn = itertools.count()
        self._unreported = 0
        self._reported_at = float("-inf")

    def put(self, body: bytes, *, front: bool = False) -> None:
        """Queue the body (at the head if ``front``) and hand the queue out to consumers."""
        if not self.waiting and len(self.consumers) == 1:  # the usual case, in short
            consumer = self.consumers[0]
            if consumer.held < CONSUMER_PREFETCH:
                consumer.deliver(body)
                return
        if front:
            self.waiting.appendleft(body)
        else:
            self.waiting.append(body)
        self.waiting_bytes += _size(body)
        self.dispatch()
        self._enforce_limits()

    def dispatch(self) -> None:
        """Give waiting bodies, in order, round-robin to consumers with room."""
        while self.waiting and self.consumers:
            count = len(self.consumers)
            start = next(self._turn)
            for step in range(count):
                consumer = self.consumers[(start + step) % count]
                if consumer.has_room:
                    break
            else:
                return  # every consumer is full: the rest waits here
            body = self.waiting.popleft()
            self.waiting_bytes -= _size(body)
            consumer.deliver(body)

    def _enforce_limits(self) -> None:
        limits = self.broker.limits
        # The count limit is for queues nobody takes from; a burst of many small messages
        # to live consumers is kept, while max_queue_bytes bounds every queue (a consumer
        # stuck for good cannot make its queue grow past it).
        max_length = limits.max_queue_length if not self.consumers else None
        dropped = 0
        while self.waiting and ((max_length is not None and len(self.waiting) > max_length)
                                or self.waiting_bytes > limits.max_queue_bytes):
            self.waiting_bytes -= _size(self.waiting.popleft())
            dropped += 1
        if dropped:
            self.broker.count_drops(self, dropped)
            self._report(dropped, limits)

    def _report(self, dropped: int, limits: QueueLimits) -> None:
        self._unreported += dropped
        now = time.monotonic()
        if now - self._reported_at >= DROP_LOG_INTERVAL:
            LOG.warning("memory broker %r: queue %r is over its limit (%d messages, %d bytes); "
                        "dropped %d message(s) from its head since the last report, %d in all",
                        self.broker.name, self.name, limits.max_queue_length,
                        limits.max_queue_bytes, self._unreported,
                        self.broker.dropped().get(self.name, 0))
            self._unreported = 0
            self._reported_at = now


class MemoryBroker:
    """Exchanges (topic or fanout), queues and bindings, kept in one process."""

    def __init__(self, name: str, limits: QueueLimits | None = None) -> None:
        self.name = name
        self.limits = limits or QueueLimits()
        self._dropped: collections.Counter[str] = collections.Counter()
        self._lock = threading.RLock()
        self._queues: dict[str, Queue] = {}
        self._fanout_exchanges: set[str] = set()
        self._bindings: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
        self._taps: list[tuple[Callable[[str, str], bool], Consumer]] = []

    def declare_queue(self, name: str, *, auto_delete: bool = False) -> Queue:
        with self._lock:
            queue = self._queues.get(name)
            if queue is None:
                queue = self._queues[name] = Queue(self, name, auto_delete)
            return queue

    def has_fanout_exchange(self, exchange: str) -> bool:
        """Whether a fanout exchange of that name was declared."""
        with self._lock:
            return exchange in self._fanout_exchanges

    def declare_fanout_exchange(self, exchange: str) -> None:
        with self._lock:
            self._fanout_exchanges.add(exchange)

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        with self._lock:
            self._bindings[(exchange, routing_key)].add(queue)

    def publish(self, exchange: str, routing_key: str, body: bytes) -> int:
        """Route a body; returns how many queues took it (0 means unroutable)."""
        with self._lock:
            known = self._queues
            if exchange == DEFAULT_EXCHANGE:
                queue = known.get(routing_key)
                queues = [queue] if queue is not None else []
            else:
                names: Any
                if exchange in self._fanout_exchanges:
                    names = {q for (ex, _), qs in self._bindings.items() if ex == exchange
                             for q in qs}
                else:
                    names = self._bindings.get((exchange, routing_key), ())
                queues = [known[n] for n in names if n in known]
            for queue in queues:
                queue.put(body)
            if self._taps:
                for wants, tap in self._taps:
                    if wants(exchange, routing_key):
                        tap.queue.put((exchange, routing_key, body))  # type: ignore[arg-type]
            return len(queues)

    def dropped(self) -> dict[str, int]:
        """Bodies dropped so far because a queue was over its limits, by queue name."""
        with self._lock:
            return dict(self._dropped)

    def count_drops(self, queue: Queue, count: int) -> None:
        self._dropped[queue.name] += count

    def depth(self, queue_name: str) -> tuple[int, int]:
        """``(messages, bytes)`` waiting in a queue (not yet given to a consumer)."""
        with self._lock:
            queue = self._queues.get(queue_name)
            return (len(queue.waiting), queue.waiting_bytes) if queue else (0, 0)

    def settled(self, consumer: Consumer) -> None:
        """A consumer finished one body: it has room for the next waiting one."""
        with self._lock:
            consumer.held -= 1
            consumer.queue.dispatch()

    def add_tap(self, wants: Callable[[str, str], bool],
                handler: Handler, name: str) -> Consumer:
        """Copy ``(exchange, key, body)`` of every publish ``wants(exchange, key)`` accepts.

        Taps see messages without taking them and do not make a message routable.
        """
        with self._lock:
            tap = Consumer(Queue(self, name, auto_delete=True), handler, name)
            tap.queue.consumers.append(tap)
            self._taps.append((wants, tap))
            return tap

    def waiting_bodies(self, queue_name: str) -> list[bytes]:
        """The bodies waiting in a queue now (not given to a consumer), oldest first."""
        with self._lock:
            queue = self._queues.get(queue_name)
            return list(queue.waiting) if queue is not None else []

    def remove_waiting(self, queue_name: str, body: bytes) -> bool:
        """Take that very body (by identity) out of a queue; False if it is gone."""
        with self._lock:
            queue = self._queues.get(queue_name)
            if queue is None:
                return False
            for index, waiting in enumerate(queue.waiting):
                if waiting is body:
                    del queue.waiting[index]
                    queue.waiting_bytes -= _size(body)
                    return True
            return False

    def enqueue(self, queue_name: str, body: bytes) -> None:
        """Put a body at the tail of a queue (a retry falling due); dropped if it is gone."""
        with self._lock:
            queue = self._queues.get(queue_name)
            if queue is not None:
                queue.put(body)

    def requeue(self, queue_name: str, body: bytes) -> None:
        with self._lock:
            queue = self._queues.get(queue_name)
            if queue is not None:
                queue.put(body, front=True)

    def consume(self, queue_name: str, handler: Handler, name: str) -> Consumer:
        """Start a consumer; bodies already waiting in the queue go to it first."""
        with self._lock:
            queue = self._queues[queue_name]
            consumer = Consumer(queue, handler, name)
            queue.consumers.append(consumer)
            queue.dispatch()
            return consumer

    def cancel(self, consumer: Consumer) -> None:
        with self._lock:
            self._taps = [(w, t) for w, t in self._taps if t is not consumer]
            queue = consumer.queue
            if consumer in queue.consumers:
                queue.consumers.remove(consumer)
            if queue.auto_delete and not queue.consumers:
                self._delete_queue(queue.name)

    def delete_queue(self, name: str) -> None:
        with self._lock:
            self._delete_queue(name)

    def _delete_queue(self, name: str) -> None:
        self._queues.pop(name, None)
        for key in [k for k, qs in self._bindings.items() if name in qs]:
            self._bindings[key].discard(name)
            if not self._bindings[key]:
                del self._bindings[key]


_brokers: weakref.WeakValueDictionary[str, MemoryBroker] = weakref.WeakValueDictionary()
_brokers_lock = threading.Lock()


def broker_named(name: str, limits: QueueLimits | None = None) -> MemoryBroker:
    """The process's broker of that name; it lives while some bus holds it.

    ``limits`` (when given) become the broker's, for its present and future queues, as a
    RabbitMQ policy would; a change of the limits of a broker in use is logged.
    """
    with _brokers_lock:
        broker = _brokers.get(name)
        if broker is None:
            broker = _brokers[name] = MemoryBroker(name, limits)
        elif limits is not None and limits != broker.limits:
            LOG.warning("memory broker %r: queue limits changed from %s to %s", name,
                        broker.limits, limits)
            with broker._lock:
                broker.limits = limits
        return broker
