"""Test support for relaybus and its users.

* :mod:`relaybus.testing.behaviour`: the behaviour suite every transport must pass; bind
  it to a transport by subclassing its classes with a ``transport_url`` (needs pytest).
* :mod:`relaybus.testing.buses`: a factory of buses a test opens, all closed at its end.
* :mod:`relaybus.testing.brokers`: skip, or fail under ``RELAYBUS_REQUIRE_BROKERS=1``,
  when a broker a test needs is not reachable.
"""
