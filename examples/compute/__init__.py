"""A nova-like compute service, ready for ``relaybus serve``."""
