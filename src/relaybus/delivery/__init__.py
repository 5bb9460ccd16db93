"""Delivery policies: what happens when a handler fails, written once above the drivers.

A :class:`DeliveryPolicy` says how often a failed notification (or cast) is tried again,
how long to wait in between, which errors are not worth another attempt, and where the
message goes when it is given up on: the dead-letter topic, with the reason attached
(:class:`DeadLetterReason`). Listeners and RPC servers take it as ``delivery=``.
"""

from relaybus.delivery.letters import DEAD_LETTER_KEY, REPLAY_KEY, DeadLetterReason
from relaybus.delivery.policy import DeliveryPolicy

__all__ = ["DEAD_LETTER_KEY", "REPLAY_KEY", "DeadLetterReason", "DeliveryPolicy"]
