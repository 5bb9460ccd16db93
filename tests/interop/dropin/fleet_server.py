"""The fleet's server side: an RPC server per host, and on one host the listeners."""

from __future__ import annotations

import json
import sys
from typing import Any

from fleet_endpoints import (
    BaseAPI,
    BatchNotifications,
    ComputeAPI,
    FilteredNotifications,
    Observations,
    SchedulerAPI,
)
from fleet_messaging import messaging
from fleet_objects import FleetSerializer


def serve(conf: Any, host: str, *, listeners: bool) -> None:
    """Listen until stdin closes, then stop, wait and clean up like a service does."""
    seen = Observations()
    serializer = FleetSerializer()
    transport = messaging.get_rpc_transport(conf)
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic=conf.fleet.topic, server=host),
        [ComputeAPI(host, seen), SchedulerAPI(), BaseAPI(seen)], executor="threading",
        serializer=serializer, access_policy=messaging.DefaultRPCAccessPolicy)
    consumers = [server]
    notify_transport = None
    if listeners:
        notify_transport = messaging.get_notification_transport(conf)
        targets = [messaging.Target(topic=topic)
                   for topic in conf.oslo_messaging_notifications.topics]
        consumers.append(messaging.get_notification_listener(
            notify_transport, targets, [FilteredNotifications(seen)], executor="threading",
            serializer=serializer, allow_requeue=True, pool=f"{conf.fleet.topic}-filtered"))
        consumers.append(messaging.get_batch_notification_listener(
            notify_transport, targets, [BatchNotifications(seen)], executor="threading",
            serializer=serializer, pool=f"{conf.fleet.topic}-batch",
            batch_size=BatchNotifications.BATCH_SIZE, batch_timeout=1))
    for consumer in consumers:
        consumer.start()
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.read()
    for consumer in consumers:
        consumer.stop()
    for consumer in consumers:
        consumer.wait()
    transport.cleanup()
    if notify_transport is not None:
        notify_transport.cleanup()
    print(json.dumps({"stopped": host}), flush=True)
