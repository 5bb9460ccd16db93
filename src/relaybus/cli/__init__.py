"""The ``relaybus`` command line."""

from relaybus.cli.main import main

__all__ = ["main"]
