"""The demo's nova-like compute service, shared by ``relaybus demo`` and its ``--console``."""

from __future__ import annotations

import asyncio
from typing import Any

import relaybus
from relaybus import Target

HOSTS = ("host1", "host2", "host3")


class InstanceNotFound(ValueError):
    """Raised by a compute host asked about an instance it does not have."""


class ComputeManager:
    """The compute service's RPC interface, version 1.3 of namespace ``compute``."""

    target = Target(namespace="compute", version="1.3")

    def __init__(self, host: str, notifier: relaybus.Notifier,
                 capabilities: dict[str, dict[str, Any]], all_updated: asyncio.Event) -> None:
        self.host = host
        self.notifier = notifier
        self.capabilities = capabilities
        self.all_updated = all_updated
        self.instances: set[int] = set()

    async def run_instance(self, ctxt: dict[str, Any], instance_id: int,
                           request_spec: dict[str, Any]) -> dict[str, Any]:
        self.instances.add(instance_id)
        await self.notifier.info(ctxt, "compute.instance.create.end",
                                 {"instance_id": instance_id, "host": self.host})
        return {"host": self.host, "instance_id": instance_id}

    async def get_instance(self, ctxt: dict[str, Any], instance_id: int) -> dict[str, Any]:
        if instance_id not in self.instances:
            raise InstanceNotFound(f"instance {instance_id} is not on {self.host}")
        return {"host": self.host, "instance_id": instance_id}

    async def update_capabilities(self, ctxt: dict[str, Any], caps: dict[str, Any]) -> None:
        self.capabilities[self.host] = caps
        if len(self.capabilities) == len(HOSTS):
            self.all_updated.set()
