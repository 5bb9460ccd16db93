"""relaybus's pytest plugin: a bus per test, spies on endpoints, captured notifications.

Installed with the ``testing`` extra and registered by its ``pytest11`` entry point (or
``-p relaybus.testing.pytest_plugin``). Fixtures:

* ``relaybus_bus``: a bus connected for this test and closed after it: a fresh
  ``memory://`` broker of its own, or the URL given by ``--relaybus-url`` (or the ini
  option ``relaybus_url``).
* ``relaybus_spy``: ``relaybus_spy(endpoint)`` returns a :class:`~relaybus.testing.spies.Spy`
  to serve in the endpoint's place; ``await spy.next_call("add")`` returns the next call.
* ``captured_notifications``: ``await captured_notifications(*targets)`` starts a listener
  (in a pool of its own, so it takes nothing from the code under test) recording every
  notification on those targets (topic names or Targets; default ``notifications``).

See docs/testing.md.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

import relaybus
from relaybus.notify.listener import NotificationListener
from relaybus.target import Target
from relaybus.testing.spies import NotificationCapture, Spy, spy_on

URL_OPTION = "relaybus_url"

CaptureNotifications = Callable[..., Awaitable[NotificationCapture]]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("relaybus")
    group.addoption("--relaybus-url", dest=URL_OPTION, default=None, metavar="URL",
                    help="transport URL the relaybus_bus fixture connects to (default: a "
                         "fresh memory:// broker per test)")
    parser.addini(URL_OPTION, "transport URL the relaybus_bus fixture connects to "
                  "(default: a fresh memory:// broker per test)", default="")


def relaybus_url(config: pytest.Config) -> str | None:
    """The URL the command line or the ini file names, or None (a fresh memory broker)."""
    given = config.getoption(URL_OPTION) or config.getini(URL_OPTION)
    if not isinstance(given, str) or not given.strip():
        return None
    return given.strip()


def _unique(what: str) -> str:
    return f"relaybus-test-{what}-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def relaybus_bus(request: pytest.FixtureRequest) -> AsyncIterator[relaybus.Bus]:
    """A bus for this test, closed (with its servers and listeners) after it."""
    url = relaybus_url(request.config) or f"memory://{_unique('bus')}"
    bus = await relaybus.connect(url)
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
def relaybus_spy() -> Callable[[object], Spy]:
    """``relaybus_spy(endpoint)``: a spy to serve in the endpoint's place."""
    return spy_on


def _target(target: Target | str) -> Target:
    if isinstance(target, str):
        return Target(topic=target)
    if isinstance(target, Target):
        return target
    raise TypeError(f"captured_notifications takes topic names or Targets, got {target!r}")


@pytest_asyncio.fixture
async def captured_notifications(
        relaybus_bus: relaybus.Bus) -> AsyncIterator[CaptureNotifications]:
    """``await captured_notifications(*targets)``: a started capture of their notifications."""
    listeners: list[NotificationListener] = []

    async def capture(*targets: Target | str) -> NotificationCapture:
        endpoint = NotificationCapture()
        listener = relaybus_bus.notification_listener(
            [_target(t) for t in targets or ("notifications",)], [endpoint],
            pool=_unique("capture"))
        await listener.start()
        listeners.append(listener)
        return endpoint

    try:
        yield capture
    finally:
        for listener in listeners:
            await listener.stop()
        for listener in listeners:
            await listener.wait()
