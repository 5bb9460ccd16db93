"""Runnable examples of relaybus, each exercised by a test."""
