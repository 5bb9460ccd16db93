"""The ``nats://`` transport: NATS for RPC, JetStream for durable notifications.

Install with ``pip install 'relaybus[nats]'``; connect with
``relaybus.connect("nats://user:pass@host1:4222,host2:4222/")``. Options are listed on
:class:`~relaybus.drivers.nats.options.NatsOptions`; the subjects, streams and consumers
relaybus uses are described in :mod:`relaybus.drivers.nats.naming` and
docs/protocol/nats.md.
"""

from relaybus.drivers.nats.driver import NatsDriver
from relaybus.drivers.nats.options import NatsOptions

__all__ = ["NatsDriver", "NatsOptions"]
