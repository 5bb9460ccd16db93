"""The fleet's client side: every kind of call, cast and notification a nova-style
service sends, each outcome recorded (the result, or what was raised)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fleet_exceptions
from fleet_endpoints import ComputeBusy
from fleet_messaging import messaging
from fleet_objects import Context, Flavor, FleetSerializer

THREADS = 8
CTXT = Context("u1", "p1", "req-1", auth_token="secret-token")
OTHER_PROJECT = Context("u2", "p2", "req-2", auth_token="other-token")
FLAVOR = Flavor("m1.small", 1, 2048)

# (publisher, priority, context, event_type): seq is the position in this list, from 1
NOTIFICATIONS = [
    ("compute.host1", "info", CTXT, "compute.instance.create.start"),
    ("compute.host2", "info", CTXT, "compute.instance.create.end"),
    ("compute.host2", "warn", CTXT, "compute.instance.delete.start"),
    ("compute.host2", "error", CTXT, "compute.instance.fault"),
    ("compute.host2", "info", OTHER_PROJECT, "compute.instance.update"),
    ("compute.host2", "info", CTXT, "scheduler.select.end"),
    ("compute.host2", "audit", CTXT, "compute.instance.exists"),
    ("compute.host2", "critical", CTXT, "compute.instance.panic"),
    ("compute.host2", "debug", CTXT, "compute.instance.trace"),
    ("compute.host2", "sample", CTXT, "compute.instance.cpu"),
    ("compute.host2", "warning", CTXT, "compute.instance.shutdown"),
]
# what the listeners on host1 must see: the filtered one 8 of the above plus the requeued
# fault again, the batch one (info, warn, error only) 7
EXPECT_HOST1 = {"fanout": 1, "casts": 5, "filtered": 9, "batch": 7}
EXPECT_HOST2 = {"fanout": 1}

_IDS = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _classes() -> list[tuple[str, type[BaseException]]]:
    return [(name, getattr(messaging, name)) for name in (
        "MessagingException", "MessagingTimeout", "MessageDeliveryFailure", "RemoteError",
        "RPCVersionCapError", "UnsupportedVersion", "NoSuchMethod", "ExpectedException",
    )] + [("FleetException", fleet_exceptions.FleetException),
          ("InstanceNotFound", fleet_exceptions.InstanceNotFound),
          ("ComputeBusy", ComputeBusy), ("ValueError", ValueError), ("KeyError", KeyError)]


def describe(exc: BaseException) -> dict[str, Any]:
    """What a service can observe of an exception: its classes, message and details."""
    # a rebuilt remote exception carries the remote traceback after its first line
    first = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    text = first.splitlines()
    seen: dict[str, Any] = {
        "is": [name for name, cls in _classes() if isinstance(exc, cls)],
        "message": _IDS.sub("<id>", text[0]) if text else "",
    }
    if isinstance(exc, messaging.MessagingTimeout):
        # oslo's text names a random message id; what a caller can rely on is the class
        seen["message"] = "<timeout>"
    if isinstance(exc, messaging.RemoteError):
        seen["exc_type"] = exc.exc_type
        seen["value"] = (exc.value or "").splitlines()[:1]
    if isinstance(exc, fleet_exceptions.FleetException):
        seen["kwargs"] = exc.kwargs
    return seen


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {type(value).__name__: jsonable(dataclasses.asdict(value))}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    return value


class Recorder:
    def __init__(self) -> None:
        self.outcome: dict[str, Any] = {}

    def step(self, name: str, action: Callable[[], Any]) -> None:
        try:
            self.outcome[name] = {"result": jsonable(action())}
        except Exception as exc:  # noqa: BLE001 - every outcome is recorded, failures too
            self.outcome[name] = {"raised": describe(exc)}


def _together(action: Callable[[int], Any], count: int) -> list[Any]:
    with ThreadPoolExecutor(THREADS) as threads:
        return list(threads.map(action, range(count)))


def run(conf: Any) -> dict[str, Any]:
    serializer = FleetSerializer()
    transport = messaging.get_rpc_transport(
        conf, allowed_remote_exmods=[fleet_exceptions.__name__])
    topic = conf.fleet.topic
    # one client per RPC API, as nova has them; only compute's is capped
    client = messaging.get_rpc_client(
        transport, messaging.Target(topic=topic, version="2.0"), version_cap="2.2",
        serializer=serializer)
    compute = client.prepare(namespace="compute")
    scheduler = messaging.get_rpc_client(
        transport, messaging.Target(topic=topic, namespace="scheduler", version="1.0"),
        serializer=serializer)
    base = messaging.get_rpc_client(
        transport, messaging.Target(topic=topic, namespace="baseapi", version="1.0"),
        serializer=serializer)
    unversioned = messaging.get_rpc_client(
        transport, messaging.Target(topic=topic), serializer=serializer)
    rec = Recorder()
    step = rec.step

    step("can_send_version", lambda: [
        client.can_send_version("2.2"), client.can_send_version("2.3"),
        client.can_send_version(), client.prepare(version_cap="2.5").can_send_version("2.5")])
    step("compute.describe", lambda: compute.call(CTXT, "describe"))
    step("scheduler.describe", lambda: scheduler.call(CTXT, "describe"))
    step("ping.host1", lambda: base.prepare(server="host1").call(CTXT, "ping", arg=[1, "a"]))
    for host in ("host1", "host2"):
        step(f"directed.{host}",
             lambda host=host: compute.prepare(server=host).call(CTXT, "get_host"))
    step("build_instance", lambda: compute.call(CTXT, "build_instance", instance_id="i-1",
                                                flavor=FLAVOR))
    step("select_destinations", lambda: scheduler.call(CTXT, "select_destinations",
                                                       spec={"flavor": FLAVOR}))
    step("resize_over_cap", lambda: compute.prepare(version="2.3").call(
        CTXT, "resize_instance", instance_id="i-1", flavor=FLAVOR))
    step("resize_cap_raised", lambda: client.prepare(
        namespace="compute", version="2.3", version_cap="2.3").call(
        CTXT, "resize_instance", instance_id="i-1", flavor=FLAVOR))
    step("newer_minor", lambda: client.prepare(
        namespace="compute", version="2.5", version_cap="3.0").call(CTXT, "describe"))
    step("other_major", lambda: client.prepare(
        namespace="compute", version="3.0", version_cap="3.0").call(CTXT, "describe"))
    step("no_such_method", lambda: compute.call(CTXT, "reboot_instance"))
    step("unknown_namespace", lambda: client.prepare(namespace="network").call(
        CTXT, "describe"))
    step("private_method", lambda: compute.call(CTXT, "_private"))
    step("instance_not_found", lambda: compute.call(CTXT, "get_instance", instance_id="i-404"))
    step("builtin_error", lambda: compute.call(CTXT, "fail", kind="value"))
    step("private_error", lambda: compute.call(CTXT, "fail", kind="busy"))
    step("expected_error", lambda: compute.call(CTXT, "lookup", key="missing"))
    step("rpc_ping", lambda: unversioned.prepare(server="host1").call(
        CTXT, "oslo_rpc_server_ping"))
    step("no_such_server", lambda: compute.prepare(server="host9", timeout=2).call(
        CTXT, "get_host"))
    step("casts", lambda: [compute.prepare(server="host1").cast(CTXT, "record", seq=seq)
                           for seq in range(5)])
    step("fanout", lambda: compute.prepare(fanout=True).cast(CTXT, "refresh_cache",
                                                             generation=7))
    step("threads.rendezvous", lambda: _together(
        lambda _: compute.prepare(server="host2").call(
            CTXT, "rendezvous", key="r1", parties=THREADS), THREADS))
    step("threads.round_robin", lambda: _together(
        lambda n: compute.call(CTXT, "build_instance", instance_id=f"i-{n}",
                               flavor=Flavor(f"f{n}", n, 512))["flavor"], 4 * THREADS))
    step("threads.directed", lambda: _together(
        lambda n: compute.prepare(server=f"host{n % 2 + 1}").call(CTXT, "get_host"),
        4 * THREADS))

    notify_transport = messaging.get_notification_transport(conf)
    notifier = messaging.Notifier(notify_transport, publisher_id="compute.host1",
                                  serializer=serializer)
    by_publisher = {"compute.host1": notifier,
                    "compute.host2": notifier.prepare(publisher_id="compute.host2")}
    step("notify", lambda: [
        getattr(by_publisher[publisher], priority)(
            ctxt, event_type, {"seq": seq, "flavor": FLAVOR})
        for seq, (publisher, priority, ctxt, event_type) in enumerate(NOTIFICATIONS, 1)])
    step("notifier.is_enabled", notifier.is_enabled)

    observe = base.prepare(timeout=60)
    step("observed.host1", lambda: observe.prepare(server="host1").call(
        CTXT, "observed", expect=EXPECT_HOST1))
    step("observed.host2", lambda: observe.prepare(server="host2").call(
        CTXT, "observed", expect=EXPECT_HOST2))
    transport.cleanup()
    notify_transport.cleanup()
    return rec.outcome
