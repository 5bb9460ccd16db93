"""``list_opts`` for oslo-config-generator (``oslo_messaging.opts`` in oslo.messaging)."""

from relaybus.oslo_messaging._opts import list_opts

__all__ = ["list_opts"]
