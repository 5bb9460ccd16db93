"""oslo.messaging's functional suite on ``fake://`` (relaybus's embedded transport)."""

from _oslo_tests import CLASSES
from conftest import bind

bind(globals(), "fake", *CLASSES)
