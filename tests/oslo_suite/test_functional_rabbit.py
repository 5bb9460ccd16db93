"""oslo.messaging's functional suite on RabbitMQ (a virtual host of its own)."""

from _oslo_tests import CLASSES
from conftest import bind

bind(globals(), "rabbit", *CLASSES)
