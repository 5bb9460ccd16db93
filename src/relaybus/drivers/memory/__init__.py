"""The embedded in-process transport, ``memory://``."""

from relaybus.drivers.memory.driver import MemoryDriver

__all__ = ["MemoryDriver"]
