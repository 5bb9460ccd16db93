"""An in-process broker with RabbitMQ's routing model: exchanges, bound queues, consumers.

Every bus connected to ``memory://NAME`` in one process shares the broker of that NAME
(``memory://`` is the default one). Bodies are bytes, so everything a driver sends was
really encoded. Consumers may live on different event loops (the sync facade runs its
own): deliveries cross loops with ``call_soon_threadsafe`` and broker state is guarded by a
lock.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

DEFAULT_EXCHANGE = ""
LOG = logging.getLogger(__name__)


class Consumer:
    """One consumer of one queue: an inbox drained by a named task into a handler."""

    def __init__(self, queue: Queue, handler: Callable[[bytes], Awaitable[None]],
                 name: str) -> None:
        self.queue = queue
        self.handler = handler
        self.loop = asyncio.get_running_loop()
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.task = self.loop.create_task(self._pump(), name=name)

    def deliver(self, body: bytes) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.inbox.put_nowait(body)
        else:
            self.loop.call_soon_threadsafe(self.inbox.put_nowait, body)

    async def _pump(self) -> None:
        while (body := await self.inbox.get()) is not None:
            try:
                await self.handler(body)
            except Exception:  # noqa: BLE001 - one message must never stop a consumer
                LOG.exception("consumer %s could not handle a message; dropped it",
                              self.task.get_name())

    async def stop(self) -> None:
        """Leave the queue; hand what the inbox holds to the handler, then end."""
        self.queue.broker.cancel(self)
        # call_soon, not put_nowait: a delivery another thread scheduled before the
        # cancel must still land before the end marker.
        self.loop.call_soon(self.inbox.put_nowait, None)
        await self.task


class Queue:
    """A named queue: bodies wait here while it has no consumer."""

    def __init__(self, broker: MemoryBroker, name: str, auto_delete: bool) -> None:
        self.broker = broker
        self.name = name
        self.auto_delete = auto_delete
        self.waiting: collections.deque[bytes] = collections.deque()
        self.consumers: list[Consumer] = []
        self._turn = itertools.count()

    def put(self, body: bytes, *, front: bool = False) -> None:
        """Give the body to the next consumer round-robin, or keep it until one comes."""
        if self.consumers:
            self.consumers[next(self._turn) % len(self.consumers)].deliver(body)
        elif front:
            self.waiting.appendleft(body)
        else:
            self.waiting.append(body)


class MemoryBroker:
    """Exchanges (topic or fanout), queues and bindings, kept in one process."""

    def __init__(self, name: str) -> None:
        self.name = name
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

    def declare_fanout_exchange(self, exchange: str) -> None:
        with self._lock:
            self._fanout_exchanges.add(exchange)

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        with self._lock:
            self._bindings[(exchange, routing_key)].add(queue)

    def publish(self, exchange: str, routing_key: str, body: bytes) -> int:
        """Route a body; returns how many queues took it (0 means unroutable)."""
        with self._lock:
            if exchange == DEFAULT_EXCHANGE:
                names: Any = (routing_key,) if routing_key in self._queues else ()
            elif exchange in self._fanout_exchanges:
                names = {q for (ex, _), qs in self._bindings.items() if ex == exchange
                         for q in qs}
            else:
                names = self._bindings.get((exchange, routing_key), ())
            queues = [self._queues[n] for n in names if n in self._queues]
            for queue in queues:
                queue.put(body)
            for wants, tap in self._taps:
                if wants(exchange, routing_key):
                    tap.deliver((exchange, routing_key, body))  # type: ignore[arg-type]
            return len(queues)

    def add_tap(self, wants: Callable[[str, str], bool],
                handler: Callable[[Any], Awaitable[None]], name: str) -> Consumer:
        """Copy ``(exchange, key, body)`` of every publish ``wants(exchange, key)`` accepts.

        Taps see messages without taking them and do not make a message routable.
        """
        with self._lock:
            tap = Consumer(Queue(self, name, auto_delete=True), handler, name)
            self._taps.append((wants, tap))
            return tap

    def requeue(self, queue_name: str, body: bytes) -> None:
        with self._lock:
            queue = self._queues.get(queue_name)
            if queue is not None:
                queue.put(body, front=True)

    def consume(self, queue_name: str, handler: Callable[[bytes], Awaitable[None]],
                name: str) -> Consumer:
        """Start a consumer; bodies already waiting in the queue go to it first."""
        with self._lock:
            queue = self._queues[queue_name]
            consumer = Consumer(queue, handler, name)
            queue.consumers.append(consumer)
            while queue.waiting:
                queue.put(queue.waiting.popleft())
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


def broker_named(name: str) -> MemoryBroker:
    """The process's broker of that name; it lives while some bus holds it."""
    with _brokers_lock:
        broker = _brokers.get(name)
        if broker is None:
            broker = _brokers[name] = MemoryBroker(name)
        return broker
