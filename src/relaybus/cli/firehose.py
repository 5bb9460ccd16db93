"""``relaybus firehose``: the gateway as a long-running process; and ``demo --console``.

The gateway listens to the bus's notifications as a pool of its own and republishes each
as a CloudEvent to MQTT, WebSocket and SSE clients (see :mod:`relaybus.gateway`). It runs
until SIGINT or SIGTERM, then stops cleanly. On ``memory://`` the bus lives inside this
process, so only what is published through the gateway itself reaches it; ``relaybus demo
--console`` runs the demo's services and the gateway together instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

import relaybus
from relaybus import Target
from relaybus.cli.common import settings_from

GATEWAY_EXTRA = "the firehose needs the gateway extra: pip install 'relaybus[gateway]'"


def _gateway_module() -> Any:
    try:
        import relaybus.gateway as gateway
    except ImportError as exc:  # starlette, uvicorn or aiomqtt missing
        raise click.ClickException(f"{GATEWAY_EXTRA} ({exc})") from exc
    return gateway


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _run(main: Callable[[], Any]) -> None:
    """Run ``main()`` and turn the errors a user can fix into one clear line."""
    gateway = _gateway_module()
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    refused = gateway.mqtt.MqttRefused
    try:
        asyncio.run(main())
    except* refused as group:
        raise click.ClickException(str(group.exceptions[0])) from None
    except* relaybus.MessagingError as group:
        exc = group.exceptions[0]
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    except* OSError as group:  # e.g. the HTTP port is taken
        raise click.ClickException(f"cannot start the gateway: {group.exceptions[0]}") from None


def _announce(gateway: Any, bus: relaybus.Bus, extra: str = "") -> None:
    mqtt = f", mqtt {gateway.bridge.url}" if gateway.bridge else ""
    click.echo(f"relaybus firehose: console {gateway.url} (bus {bus.url.masked()}{mqtt}, "
               f"topics {', '.join(gateway.options.topics)}, pool {gateway.options.pool})"
               f"{extra}")
    sys.stdout.flush()


async def serve_firehose(url: str | None, options: Any, **connect_options: Any) -> None:
    """Connect, run the gateway until a signal, close."""
    gateway_module = _gateway_module()
    stop = asyncio.Event()
    async with await relaybus.connect(url, **connect_options) as bus:
        gateway = gateway_module.Gateway(bus, options)
        async with gateway.running():
            hint = ""
            if bus.url.scheme == "memory":
                hint = ("\nmemory:// lives in this process: only events published through "
                        "this gateway (POST /publish) reach it; try `relaybus demo --console`")
            _announce(gateway, bus, hint)
            with _stop_on_signals(stop):
                await stop.wait()


def _split(values: tuple[str, ...]) -> list[str]:
    return [part for value in values for part in value.split(",") if part]


@click.command()
@click.option("--bus", "--url", "url", default=None,
              help="Transport URL to listen on (else $RELAYBUS_URL, the config file, "
                   "memory://).")
@click.option("--mqtt", default=None, envvar="RELAYBUS_FIREHOSE_MQTT",
              help="Also publish to this MQTT broker: mqtt://user:password@host:1883.")
@click.option("--http", default="127.0.0.1:8765", show_default=True,
              help="host:port of the console, /ws, /events (port 0: any free port).")
@click.option("--topics", multiple=True, default=("notifications",), show_default=True,
              help="Notification topics to listen to (repeat, or separate with commas).")
@click.option("--exchange", default=None,
              help="Exchange of those topics (default: the bus's control exchange).")
@click.option("--pool", default="relaybus-firehose", show_default=True,
              help="The gateway's listener pool (it never takes other pools' messages).")
@click.option("--mqtt-topic", default="{exchange}/{publisher_id}/{event_type_path}",
              show_default=True, help="Topic template; fields: exchange, bustopic, "
              "publisher_id, event_type, event_type_path, priority.")
@click.option("--replay-events", default=10_000, show_default=True, type=click.IntRange(1),
              help="Replay buffer size, in events.")
@click.option("--replay-bytes", default=16 * 1024 * 1024, show_default=True,
              type=click.IntRange(1), help="Replay buffer size, in bytes.")
@click.option("--client-queue", default=1000, show_default=True, type=click.IntRange(1),
              help="Events a client may have waiting before its oldest are dropped.")
@click.option("--token", default=None, envvar="RELAYBUS_FIREHOSE_TOKEN",
              help="Token needed to subscribe (default: subscribing is open).")
@click.option("--publish-token", default=None, envvar="RELAYBUS_FIREHOSE_PUBLISH_TOKEN",
              help="Token needed to publish through the gateway (default: nobody can).")
@click.option("--max-frame", default=1024 * 1024, show_default=True, type=click.IntRange(64),
              help="Largest WebSocket frame or POST body accepted, in bytes.")
@click.pass_context
def firehose(ctx: click.Context, url: str | None, mqtt: str | None, http: str,
             topics: tuple[str, ...],
             exchange: str | None, pool: str, mqtt_topic: str, replay_events: int,
             replay_bytes: int, client_queue: int, token: str | None,
             publish_token: str | None, max_frame: int) -> None:
    """Republish every notification as CloudEvents to MQTT, WebSocket and SSE clients."""
    gateway = _gateway_module()
    options = gateway.GatewayOptions(
        topics=_split(topics) or ["notifications"], exchange=exchange, pool=pool, http=http,
        mqtt=mqtt, mqtt_topic=mqtt_topic, replay_events=replay_events,
        replay_bytes=replay_bytes, client_queue=client_queue, token=token,
        publish_token=publish_token, max_frame=max_frame)
    try:
        # Check every option now, before connecting to anything.
        gateway.service.parse_hostport(http)
        gateway.topics.TopicTemplate(mqtt_topic)
        if mqtt:
            gateway.mqtt.MqttURL.parse(mqtt)
        gateway.auth.Tokens(token, publish_token)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    settings = settings_from(ctx, url=url)
    connect_options = {}
    if settings.sources["control_exchange"] != "default":  # else the URL's own, if any
        connect_options["control_exchange"] = settings.control_exchange
    _run(lambda: serve_firehose(settings.url, options, **connect_options))


# -- relaybus demo --console ------------------------------------------------------------

DEMO_TOPIC = "notifications"
DEMO_EXCHANGE = "nova"


async def console_demo(url: str | None, http: str, *, interval: float = 0.5,
                       stop: asyncio.Event | None = None) -> None:
    """The demo's compute services and scheduler, busy for ever, with the gateway attached."""
    from relaybus.cli.demo import HOSTS, ComputeManager

    gateway_module = _gateway_module()
    stop = stop or asyncio.Event()
    options: dict[str, Any] = {}
    if "control_exchange" not in relaybus.parse_url(url or "memory://").query:
        options["control_exchange"] = DEMO_EXCHANGE
    async with await relaybus.connect(url, **options) as bus:
        capabilities: dict[str, dict[str, Any]] = {}
        for host in HOSTS:
            notifier = bus.notifier(f"compute.{host}", topics=[DEMO_TOPIC])
            await bus.rpc_server(Target(topic="compute", server=host),
                                 [ComputeManager(host, notifier, capabilities,
                                                 asyncio.Event())]).start()
        scheduler = bus.rpc_client(Target(topic="compute", namespace="compute",
                                          version="1.0"), timeout=10)
        events = bus.notifier("scheduler.host1", topics=[DEMO_TOPIC])
        gateway = gateway_module.Gateway(bus, gateway_module.GatewayOptions(
            topics=[DEMO_TOPIC], http=http))
        async with gateway.running():
            _announce(gateway, bus, "\nthe demo's services are running and notifying; "
                                    "Ctrl-C stops")
            with _stop_on_signals(stop):
                await _keep_busy(scheduler, events, interval, stop)


async def _keep_busy(scheduler: relaybus.RPCClient, events: relaybus.Notifier,
                     interval: float, stop: asyncio.Event) -> None:
    """Schedule instances round-robin (each compute host notifies), and sometimes fail."""
    for instance_id in itertools.count(1):
        ctxt = {"user": "admin", "request_id": f"req-{instance_id}"}
        spec = {"flavor": random.choice(["m1.small", "m1.large"])}
        await events.info(ctxt, "scheduler.select_destinations.start", spec)
        result = await scheduler.call(ctxt, "run_instance", instance_id=instance_id,
                                      request_spec=spec)
        await events.info(ctxt, "scheduler.select_destinations.end",
                          {"instance_id": instance_id, "host": result["host"]})
        if instance_id % 7 == 0:
            await events.error(ctxt, "compute.instance.create.error",
                               {"instance_id": instance_id, "reason": "No valid host"})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
        if stop.is_set():
            return


def run_console_demo(url: str | None, http: str) -> None:
    """``relaybus demo --console``."""
    _run(lambda: console_demo(url, http))
