"""The fleet server's RPC endpoints and notification endpoints, nova-style.

Two versioned namespaces (``compute`` 2.3 and ``scheduler`` 1.1) plus nova's ``baseapi``
(``ping`` and ``observed``, which answers what this server has seen once it has seen what
the caller expects). Handlers run on the executor's threads, so state is guarded.
"""

from __future__ import annotations

import threading
from typing import Any

from fleet_exceptions import InstanceNotFound
from fleet_messaging import messaging
from fleet_objects import Context, Flavor

OBSERVE_WAIT = 20.0  # seconds observed() waits for what the caller expects


class ComputeBusy(Exception):
    """Raised from a module the clients do not allow: it must arrive as a RemoteError."""


class Observations:
    """What this server received, by kind; waiters wake when a kind reaches a count."""

    def __init__(self) -> None:
        self._seen: dict[str, list[Any]] = {
            "fanout": [], "casts": [], "filtered": [], "batch": [], "batch_sizes": []}
        self._changed = threading.Condition()

    def add(self, kind: str, item: Any) -> None:
        with self._changed:
            self._seen[kind].append(item)
            self._changed.notify_all()

    def wait(self, expect: dict[str, int]) -> dict[str, Any]:
        with self._changed:
            self._changed.wait_for(
                lambda: all(len(self._seen[kind]) >= n for kind, n in expect.items()),
                timeout=OBSERVE_WAIT)
            seen: dict[str, Any] = {kind: sorted(items, key=repr)
                                    for kind, items in self._seen.items()}
        # how many batches arrive depends on timing; that none was too big does not
        seen["batch_sizes"] = all(seen["batch_sizes"])
        return seen


def _who(ctxt: Context) -> list[str | None]:
    return [type(ctxt).__name__, ctxt.user_id, ctxt.project_id, ctxt.auth_token]


class ComputeAPI:
    target = messaging.Target(namespace="compute", version="2.3")

    def __init__(self, host: str, seen: Observations) -> None:
        self.host = host
        self.seen = seen
        self._barriers: dict[str, threading.Barrier] = {}
        self._lock = threading.Lock()

    def describe(self, ctxt: Context) -> str:
        return "compute 2.3"

    def get_host(self, ctxt: Context) -> str:
        return self.host

    def build_instance(self, ctxt: Context, instance_id: str, flavor: Flavor) -> dict[str, Any]:
        return {"instance_id": instance_id, "flavor": flavor, "who": _who(ctxt),
                "flavor_type": type(flavor).__name__}

    def resize_instance(self, ctxt: Context, instance_id: str, flavor: Flavor) -> Flavor:
        """Added in 2.3: a client capped at 2.2 must not send it."""
        return Flavor(flavor.name + ".resized", flavor.vcpus * 2, flavor.memory_mb * 2)

    def get_instance(self, ctxt: Context, instance_id: str) -> None:
        raise InstanceNotFound(instance_id=instance_id)

    def fail(self, ctxt: Context, kind: str) -> None:
        if kind == "value":
            raise ValueError(f"bad value from {kind}")
        raise ComputeBusy("compute is busy")

    @messaging.expected_exceptions(KeyError)
    def lookup(self, ctxt: Context, key: str) -> Any:
        return {"known": 1}[key]

    def refresh_cache(self, ctxt: Context, generation: int) -> None:
        self.seen.add("fanout", [self.host, generation, _who(ctxt)])

    def record(self, ctxt: Context, seq: int) -> None:
        self.seen.add("casts", [self.host, seq])

    def rendezvous(self, ctxt: Context, key: str, parties: int) -> int:
        """Returns once ``parties`` calls are inside at once: proof of threaded handlers."""
        with self._lock:
            barrier = self._barriers.setdefault(key, threading.Barrier(parties, timeout=20))
        barrier.wait()
        return parties

    def _private(self, ctxt: Context) -> str:
        return "must not be reachable"


class SchedulerAPI:
    target = messaging.Target(namespace="scheduler", version="1.1")

    def describe(self, ctxt: Context) -> str:
        return "scheduler 1.1"

    def select_destinations(self, ctxt: Context, spec: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"host": host, "vcpus": spec["flavor"].vcpus} for host in ("host1", "host2")]


class BaseAPI:
    target = messaging.Target(namespace="baseapi", version="1.1")

    def __init__(self, seen: Observations) -> None:
        self.seen = seen

    def ping(self, ctxt: Context, arg: Any) -> dict[str, Any]:
        return {"service": "fleet", "arg": arg}

    def observed(self, ctxt: Context, expect: dict[str, int]) -> dict[str, Any]:
        return self.seen.wait(expect)


def _record(priority: str, ctxt: Context, publisher_id: str, event_type: str,
            payload: Any, metadata: dict[str, Any]) -> list[Any]:
    flavor = payload.get("flavor") if isinstance(payload, dict) else None
    return [priority, publisher_id, event_type, _who(ctxt), payload.get("seq"),
            type(flavor).__name__, sorted(metadata)]


class FilteredNotifications:
    """Sees compute.instance.* from compute.host2 in project p1 only; requeues the first
    fault it sees, so the fault must arrive twice."""

    filter_rule = messaging.NotificationFilter(
        context={"project_id": "^p1$"}, publisher_id=r"^compute\.host2$",
        event_type=r"^compute\.instance\.")

    def __init__(self, seen: Observations) -> None:
        self.seen = seen
        self._requeued = False

    def _handle(self, priority: str, ctxt: Context, publisher_id: str, event_type: str,
                payload: Any, metadata: dict[str, Any]) -> Any:
        record = _record(priority, ctxt, publisher_id, event_type, payload, metadata)
        if event_type == "compute.instance.fault" and not self._requeued:
            self._requeued = True
            self.seen.add("filtered", ["requeued", *record])
            return messaging.NotificationResult.REQUEUE
        self.seen.add("filtered", record)
        return messaging.NotificationResult.HANDLED

    def audit(self, *args: Any) -> Any:
        return self._handle("audit", *args)

    def debug(self, *args: Any) -> Any:
        return self._handle("debug", *args)

    def info(self, *args: Any) -> Any:
        return self._handle("info", *args)

    def warn(self, *args: Any) -> Any:
        return self._handle("warn", *args)

    def error(self, *args: Any) -> Any:
        return self._handle("error", *args)

    def critical(self, *args: Any) -> Any:
        return self._handle("critical", *args)

    def sample(self, *args: Any) -> Any:
        return self._handle("sample", *args)


class BatchNotifications:
    """A batch endpoint for info, warn and error: every message, in batches of at most 4."""

    BATCH_SIZE = 4

    def __init__(self, seen: Observations) -> None:
        self.seen = seen

    def _handle(self, priority: str, messages: list[dict[str, Any]]) -> None:
        self.seen.add("batch_sizes", len(messages) <= self.BATCH_SIZE)
        for message in messages:
            self.seen.add("batch", _record(
                priority, message["ctxt"], message["publisher_id"], message["event_type"],
                message["payload"], message["metadata"]))

    def info(self, messages: list[dict[str, Any]]) -> None:
        self._handle("info", messages)

    def warn(self, messages: list[dict[str, Any]]) -> None:
        self._handle("warn", messages)

    def error(self, messages: list[dict[str, Any]]) -> None:
        self._handle("error", messages)
