"""The ``rabbit://`` transport: RabbitMQ, wire-compatible with oslo.messaging.

Install with ``pip install 'relaybus[rabbit]'``; connect with
``relaybus.connect("rabbit://user:pass@host:5672/vhost")``. Options are listed on
:class:`~relaybus.drivers.rabbit.options.RabbitOptions`.
"""

from relaybus.drivers.rabbit.driver import RabbitDriver
from relaybus.drivers.rabbit.options import RabbitOptions

__all__ = ["RabbitDriver", "RabbitOptions"]
