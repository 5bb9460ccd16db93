"""``ConfFixture``: the test fixture services use to configure messaging in unit tests."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import fixtures

from relaybus.oslo_messaging import _opts

__all__ = ["ConfFixture"]

# the pre-[oslo_messaging_notifications] names tests may still override
_OLD_NAMES = {"notification_driver": "driver", "notification_transport_url": "transport_url",
              "notification_topics": "topics"}


class ConfFixture(fixtures.Fixture):
    """Registers the messaging options on ``conf`` and lets a test override them.

    Args:
        conf: a ``ConfigOpts``.
        transport_url: override ``[DEFAULT] transport_url`` (e.g. ``fake:/``).
    """

    def __init__(self, conf: Any, transport_url: str | None = None) -> None:
        self.conf = conf
        _opts.register_opts(conf)
        if transport_url is not None:
            self.transport_url = transport_url

    def _wrap(self, name: str, old_names_take: int) -> None:
        wrapped = getattr(self.conf, name)
        if hasattr(wrapped, "wrapped"):
            return

        @functools.wraps(wrapped)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if args and args[0] in _OLD_NAMES:
                new = (_OLD_NAMES[args[0]], *args[1:old_names_take],
                       _opts.NOTIFICATIONS_GROUP)
                args = new
            return wrapped(*args, **kwargs)

        wrapper.wrapped = wrapped  # type: ignore[attr-defined]
        setattr(self.conf, name, wrapper)

    def _unwrap(self) -> None:
        for name in ("set_override", "clear_override"):
            current: Callable[..., Any] = getattr(self.conf, name)
            if hasattr(current, "wrapped"):
                setattr(self.conf, name, current.wrapped)

    def setUp(self) -> None:
        super().setUp()
        self._wrap("set_override", 2)
        self._wrap("clear_override", 1)
        self.addCleanup(self._unwrap)
        self.addCleanup(self.conf.reset)

    @property
    def transport_url(self) -> Any:
        """``[DEFAULT] transport_url``."""
        return self.conf.transport_url

    @transport_url.setter
    def transport_url(self, value: str) -> None:
        self.conf.set_override("transport_url", value)

    @property
    def response_timeout(self) -> Any:
        """``[DEFAULT] rpc_response_timeout``: seconds a call waits by default."""
        return self.conf.rpc_response_timeout

    @response_timeout.setter
    def response_timeout(self, value: int) -> None:
        self.conf.set_override("rpc_response_timeout", value)
