"""``relaybus listen``: a terminal subscriber to the firehose, one event per line.

From a gateway (``--gateway http://host:8765``, the default; over its WebSocket, resuming
after the last event id on a dropped connection) or straight from the MQTT broker the
gateway publishes to (``--mqtt mqtt://host:1883``; with ``--session NAME`` the broker keeps
what arrives while the listener is away). Filters are MQTT-style (``nova/#``,
``+/compute.host1/#``). Events go to stdout; notes (subscribed, gap, dropped, reconnecting)
to stderr, so ``--json`` output can be piped into ``jq``.

Retrying: until the first connection succeeds, ``listen`` tries ``FIRST_ATTEMPTS`` times
(about 10 s, each failure said on stderr) and then gives up with exit status 1, since a
wrong host or port is likelier than an outage; once it has been connected, it reconnects
for ever (saying so each time), resuming where it was.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
import sys
import urllib.parse
from typing import Any

import click

from relaybus import loops

DEFAULT_GATEWAY = "http://127.0.0.1:8765"
FATAL_CLOSE = {4400, 4401, 4403}
SESSION_PREFIX = "relaybus-listen-"
SESSION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _note(text: str) -> None:
    click.echo(f"# {text}", err=True)
    sys.stderr.flush()


def format_event(event: dict[str, Any], topic: str | None, as_json: bool) -> str:
    """One line for one CloudEvent: its JSON, or ``time topic priority type data``."""
    if as_json:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    data = json.dumps(event.get("data"), separators=(",", ":"), ensure_ascii=False)
    return " ".join([str(event.get("time", "-")), topic or str(event.get("firehosetopic", "-")),
                     str(event.get("priority", "-")), str(event.get("type", "-")), data])


class _Printer:
    """Prints events and knows when ``count`` of them have been printed."""

    def __init__(self, as_json: bool, count: int) -> None:
        self.as_json = as_json
        self.count = count
        self.printed = 0

    def event(self, event: dict[str, Any], topic: str | None = None) -> bool:
        """Print one; True once enough were printed."""
        click.echo(format_event(event, topic, self.as_json))
        sys.stdout.flush()
        self.printed += 1
        return bool(self.count) and self.printed >= self.count


FIRST_ATTEMPTS = 5
CONNECT_TIMEOUT = 5.0


def _give_up(attempts: int, connected: bool, where: str, error: object) -> None:
    """Raise ClickException once the first connection has failed FIRST_ATTEMPTS times."""
    if not connected and attempts >= FIRST_ATTEMPTS:
        raise click.ClickException(f"cannot reach {where} after {attempts} attempts "
                                   f"({error}); giving up")


def _need_extra(*modules: str) -> None:
    """A UsageError (one line, exit 2) when the gateway extra is not installed."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise click.UsageError(f"this needs {', '.join(missing)}: "
                               "pip install 'relaybus[gateway]'")


def _ws_url(gateway: str, filters: list[str], since: str | None, token: str | None) -> str:
    parts = urllib.parse.urlsplit(gateway)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise click.BadParameter(f"expected http://host:port, got {gateway!r}",
                                 param_hint="--gateway")
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    query = [("topic", f) for f in filters]
    if since:
        query.append(("since", since))
    if token:
        query.append(("token", token))
    path = parts.path.rstrip("/") + "/ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path,
                                    urllib.parse.urlencode(query, quote_via=urllib.parse.quote),
                                    ""))


async def from_gateway(gateway: str, filters: list[str], printer: _Printer,
                       token: str | None, since: str | None) -> None:
    """Follow the gateway's /ws, reconnecting (with the last id seen) until done."""
    import websockets

    delay = 0.25
    attempts, connected = 0, False
    while True:
        url = _ws_url(gateway, filters, since, token)
        attempts += 1
        try:
            async with websockets.connect(url, max_size=None,
                                          open_timeout=CONNECT_TIMEOUT) as socket:
                connected = True
                async for frame in socket:
                    message = json.loads(frame)
                    kind = message.get("kind")
                    if kind == "hello":
                        delay = 0.25
                        _note(f"listening to {gateway} for {' '.join(message['filters'])}")
                    elif kind == "event":
                        event = message["event"]  # the cursor: the log offset, else the id
                        since = str(event.get("firehoseseq", event.get("id", since)))
                        if printer.event(message["event"]):
                            return
                    elif kind == "error":
                        raise click.ClickException(f"the gateway refused: {message['message']}")
                    elif kind in ("gap", "dropped"):
                        _note(f"{kind}: {json.dumps(message)}")
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code in FATAL_CLOSE:
                raise click.ClickException(f"the gateway refused: {exc.rcvd.reason}") from None
            _note(f"connection lost ({exc}); reconnecting")
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            _give_up(attempts, connected, gateway, exc)
            _note(f"cannot reach {gateway} ({exc}); retrying (attempt {attempts})")
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 5.0)


class _Seen:
    """The last ``size`` event ids printed: QoS 1 may deliver an event twice."""

    def __init__(self, size: int = 10_000) -> None:
        self._order: collections.deque[str] = collections.deque(maxlen=size)
        self._ids: set[str] = set()

    def first_time(self, event_id: Any) -> bool:
        """True the first time an id comes (events without one always pass)."""
        if not isinstance(event_id, str):
            return True
        if event_id in self._ids:
            return False
        if len(self._order) == self._order.maxlen:
            self._ids.discard(self._order[0])
        self._order.append(event_id)
        self._ids.add(event_id)
        return True


async def from_mqtt(url: str, filters: list[str], printer: _Printer,
                    session: str | None = None) -> None:
    """Subscribe on the broker and print what arrives, reconnecting on loss.

    With ``session``, the broker keeps the subscription and queues QoS 1 events while
    this listener is away (a persistent MQTT session under a fixed client id): the next
    ``listen`` with the same session name starts with what it missed.
    """
    import aiomqtt

    from relaybus.gateway.mqtt import MqttURL

    try:
        broker = MqttURL.parse(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mqtt") from exc
    options: dict[str, Any] = {"timeout": CONNECT_TIMEOUT}
    if session is not None:  # a 3.1.1 persistent session: kept until the listener returns
        options.update(identifier=f"{SESSION_PREFIX}{session}", clean_session=False,
                       protocol=aiomqtt.ProtocolVersion.V311)
    seen = _Seen()
    delay = 0.25
    attempts, connected = 0, False
    while True:
        attempts += 1
        try:
            async with broker.client(**options) as client:
                connected = True
                for topic_filter in filters:
                    await client.subscribe(topic_filter, qos=1)
                delay = 0.25
                kept = f" (session {session}: kept while away)" if session else ""
                _note(f"listening to {broker} for {' '.join(filters)}{kept}")
                async for message in client.messages:
                    try:
                        event = json.loads(message.payload)
                    except (TypeError, ValueError):
                        event = {"data": repr(message.payload)}
                    if not isinstance(event, dict):
                        event = {"data": event}
                    if not seen.first_time(event.get("id")):
                        continue
                    if printer.event(event, str(message.topic)):
                        return
        except aiomqtt.MqttError as exc:
            _give_up(attempts, connected, str(broker), exc)
            _note(f"MQTT broker {broker}: {exc}; reconnecting (attempt {attempts})")
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 5.0)


@click.command()
@click.argument("filters", nargs=-1)
@click.option("--gateway", default=None, envvar="RELAYBUS_FIREHOSE_URL",
              help=f"Gateway to follow (default: {DEFAULT_GATEWAY}).")
@click.option("--mqtt", default=None, help="Subscribe on this MQTT broker instead.")
@click.option("--json", "as_json", is_flag=True, help="Print each CloudEvent as JSON.")
@click.option("--token", default=None, envvar="RELAYBUS_FIREHOSE_TOKEN",
              help="The gateway's subscribe token, if it needs one.")
@click.option("--since", default=None, help="Start after this event (its firehoseseq, else "
              "its id; gateway only).")
@click.option("--count", default=0, type=click.IntRange(0),
              help="Exit after this many events (default: never).")
@click.option("--session", default=None,
              help="MQTT only: a name under which the broker keeps this listener's "
                   "subscription and queues events while it is away.")
def listen(filters: tuple[str, ...], gateway: str | None, mqtt: str | None, as_json: bool,
           token: str | None, since: str | None, count: int, session: str | None) -> None:
    """Print firehose events matching FILTERS (MQTT-style; default '#'), one per line."""
    if gateway and mqtt:
        raise click.UsageError("use --gateway or --mqtt, not both")
    if session is not None and not mqtt:
        raise click.UsageError("--session needs --mqtt (a gateway resumes with --since)")
    if session is not None and not SESSION_NAME.fullmatch(session):
        raise click.BadParameter("1 to 64 letters, digits, '_', '.' or '-'",
                                 param_hint="--session")
    wanted = list(filters) or ["#"]
    from relaybus.gateway.topics import BadFilter, TopicFilter

    for topic_filter in wanted:
        try:
            TopicFilter.parse(topic_filter)
        except BadFilter as exc:
            raise click.BadParameter(str(exc), param_hint="FILTERS") from exc
    _need_extra(*(("aiomqtt", "paho") if mqtt else ("websockets",)))
    printer = _Printer(as_json, count)
    try:
        if mqtt:
            loops.run(from_mqtt(mqtt, wanted, printer, session))
        else:
            loops.run(from_gateway(gateway or DEFAULT_GATEWAY, wanted, printer, token, since))
    except KeyboardInterrupt:
        pass
