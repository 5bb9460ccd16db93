"""A small inventory service written for oslo.messaging, the way OpenStack services are.

    python inventory.py --config-file inventory.conf serve     # the server, until stdin closes
    python inventory.py --config-file inventory.conf client    # calls, a cast, notifications
    python inventory.py --config-file inventory.conf demo      # both in one process (fake://)

To run it on relaybus, change the one import line marked below; nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

import oslo_messaging  # the port changes this line to: from relaybus import oslo_messaging
from oslo_config import cfg

CONF = cfg.CONF
CONF.register_opts([cfg.StrOpt("topic", default="inventory"),
                    cfg.StrOpt("host", default="inventory1")], group="inventory")


class InventoryManager:
    """The server's endpoint: version 1.1 added ``reserve``."""

    target = oslo_messaging.Target(namespace="inventory", version="1.1")

    def __init__(self, notifier: Any) -> None:
        self._stock = {"widget": 5}
        self._lock = threading.Lock()
        self._notifier = notifier

    def stock(self, ctxt: dict[str, Any], item: str) -> int:
        with self._lock:
            return self._stock.get(item, 0)

    def reserve(self, ctxt: dict[str, Any], item: str, count: int) -> int:
        with self._lock:
            left = self._stock.get(item, 0) - count
            if left < 0:
                raise OutOfStock(f"only {left + count} {item} left")
            self._stock[item] = left
        self._notifier.info(ctxt, "inventory.item.reserved", {"item": item, "count": count})
        return left

    def restock(self, ctxt: dict[str, Any], item: str, count: int) -> None:
        with self._lock:
            self._stock[item] = self._stock.get(item, 0) + count
        self._notifier.info(ctxt, "inventory.item.restocked", {"item": item, "count": count})


class OutOfStock(Exception):
    """Reaches callers as ``oslo_messaging.RemoteError`` with ``exc_type`` OutOfStock
    (over fake:// as itself)."""


class InventoryAPI:
    """The client side, as nova's ``rpcapi`` modules write it."""

    def __init__(self, transport: Any) -> None:
        target = oslo_messaging.Target(topic=CONF.inventory.topic, namespace="inventory",
                                       version="1.0")
        self.client = oslo_messaging.get_rpc_client(transport, target, version_cap="1.1")

    def stock(self, ctxt: dict[str, Any], item: str) -> int:
        return self.client.call(ctxt, "stock", item=item)

    def reserve(self, ctxt: dict[str, Any], item: str, count: int) -> int:
        return self.client.prepare(version="1.1").call(ctxt, "reserve", item=item, count=count)

    def restock(self, ctxt: dict[str, Any], item: str, count: int) -> None:
        self.client.cast(ctxt, "restock", item=item, count=count)


class AuditLog:
    """A notification endpoint: remembers events, wakes whoever waits for one."""

    def __init__(self) -> None:
        self.events: list[list[Any]] = []
        self._changed = threading.Condition()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        with self._changed:
            self.events.append([publisher_id, event_type, payload["item"], payload["count"]])
            self._changed.notify_all()

    def wait_for(self, event_type: str) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: any(event[1] == event_type for event in self.events), timeout=30)


def serve(until: Any) -> None:
    """Run the server until ``until()`` returns, then stop it and clean up."""
    notify_transport = oslo_messaging.get_notification_transport(CONF)
    notifier = oslo_messaging.Notifier(notify_transport,
                                       publisher_id=f"inventory.{CONF.inventory.host}")
    transport = oslo_messaging.get_rpc_transport(CONF)
    server = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(topic=CONF.inventory.topic, server=CONF.inventory.host),
        [InventoryManager(notifier)], executor="threading")
    server.start()
    try:
        until()
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        notify_transport.cleanup()


def run_client() -> dict[str, Any]:
    audit = AuditLog()
    notify_transport = oslo_messaging.get_notification_transport(CONF)
    listener = oslo_messaging.get_notification_listener(
        notify_transport,
        [oslo_messaging.Target(topic=topic)
         for topic in CONF.oslo_messaging_notifications.topics],
        [audit], executor="threading")
    listener.start()
    transport = oslo_messaging.get_rpc_transport(CONF)
    api = InventoryAPI(transport)
    ctxt = {"user": "demo", "request_id": "req-1"}
    results: dict[str, Any] = {"stock": api.stock(ctxt, "widget"),
                               "reserve": api.reserve(ctxt, "widget", 3)}
    try:
        api.reserve(ctxt, "widget", 10)
    except (OutOfStock, oslo_messaging.RemoteError) as exc:
        # fake:// raises the endpoint's own exception; over a broker it is a RemoteError
        results["too_many"] = getattr(exc, "exc_type", type(exc).__name__)
    api.restock(ctxt, "widget", 4)
    results["restocked"] = audit.wait_for("inventory.item.restocked")
    results["after_restock"] = api.stock(ctxt, "widget")
    listener.stop()
    listener.wait()
    transport.cleanup()
    notify_transport.cleanup()
    results["notifications"] = sorted(audit.events)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file", required=True)
    parser.add_argument("command", choices=["serve", "client", "demo"])
    args = parser.parse_args()
    CONF(["--config-file", args.config_file], project="inventory")

    def print_results() -> None:
        print(json.dumps(run_client(), sort_keys=True), flush=True)

    def until_stdin_closes() -> None:
        print(json.dumps({"ready": True}), flush=True)
        sys.stdin.read()

    if args.command == "client":
        print_results()
    else:
        serve(print_results if args.command == "demo" else until_stdin_closes)


if __name__ == "__main__":
    main()
