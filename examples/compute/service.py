"""A compute service described once, served with ``relaybus serve``.

    relaybus serve examples.compute.service:compute --server host1
    relaybus call compute run_instance instance_id=52 --namespace compute
    relaybus docs examples.compute.service:compute --format html > compute.html
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from relaybus import Service, Target


class Flavor(msgspec.Struct):
    name: str = "m1.small"
    vcpus: int = 1
    memory_mb: int = 512


class Instance(msgspec.Struct):
    instance_id: int
    host: str
    flavor: Flavor
    state: str = "active"


class InstanceCreated(msgspec.Struct):
    instance_id: int
    host: str


class ComputeAPI:
    """Instances on this host."""

    target = Target(namespace="compute", version="1.3")

    def __init__(self) -> None:
        self.instances: dict[int, Instance] = {}
        self.received: list[int] = []

    async def run_instance(self, ctxt: Any, instance_id: int,
                           flavor: Flavor | None = None) -> Instance:
        """Start an instance on this host."""
        instance = Instance(instance_id, "compute-host", flavor or Flavor())
        self.instances[instance_id] = instance
        self.received.append(instance_id)
        return instance

    async def get_instance(self, ctxt: Any, instance_id: int) -> Instance:
        """Look an instance up; KeyError when it is not on this host."""
        return self.instances[instance_id]

    async def slow_operation(self, ctxt: Any, seconds: float) -> str:
        """Take a while (for shutdown and heartbeat checks)."""
        await asyncio.sleep(seconds)
        return f"done after {seconds}s"

    async def count_received(self, ctxt: Any) -> int:
        """How many run_instance requests this server took."""
        return len(self.received)


compute = Service("compute", Target(topic="compute"), [ComputeAPI()],
                  emits={"compute.instance.create.end": InstanceCreated},
                  description="A nova-like compute service: instances on one host.")
