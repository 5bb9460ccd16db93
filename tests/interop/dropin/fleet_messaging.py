"""The one switch of the fleet program: which oslo_messaging module it runs on.

``FLEET_MESSAGING=relaybus`` (or ``fleet.py --messaging relaybus``, which sets it) picks
relaybus's drop-in; anything else picks the real oslo.messaging. Every other module of
the program imports ``messaging`` from here and nothing else differs between the two.
"""

from __future__ import annotations

import os
import warnings

IMPLEMENTATION = os.environ.get("FLEET_MESSAGING", "oslo")

with warnings.catch_warnings():
    # oslo.messaging's import chain warns about eventlet and its own deprecated modules.
    warnings.simplefilter("ignore")
    if IMPLEMENTATION == "relaybus":
        from relaybus import oslo_messaging as messaging
    else:
        import oslo_messaging as messaging

__all__ = ["IMPLEMENTATION", "messaging"]
