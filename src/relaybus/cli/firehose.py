"""``relaybus firehose``: the gateway as a long-running process.

The gateway listens to the bus's notifications as a pool of its own and republishes each
as a CloudEvent to MQTT, WebSocket and SSE clients (see :mod:`relaybus.gateway`). It runs
until SIGINT or SIGTERM, then stops cleanly. On ``memory://`` the bus lives inside this
process, so only what is published through the gateway itself reaches it; ``relaybus demo
--console`` runs the demo's services and the gateway together instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

import relaybus
from relaybus.cli import gateway_run
from relaybus.cli.common import EXIT_BAD_INPUT, CommandError, settings_from


async def serve_firehose(url: str | None, options: Any, **connect_options: Any) -> None:
    """Connect, run the gateway until a signal, close."""
    gateway_module = gateway_run.gateway_module()
    stop = asyncio.Event()
    async with await relaybus.connect(url, **connect_options) as bus:
        gateway = gateway_module.Gateway(bus, options)
        async with gateway.running():
            hint = ""
            if bus.url.scheme == "memory":
                hint = ("\nmemory:// lives in this process: only events published through "
                        "this gateway (POST /publish) reach it; try `relaybus demo --console`")
            if gateway.log_replay is not None:
                hint += (f"\nreplay: the broker's log {gateway.log_name!r} (shared by the "
                         f"gateways naming it)")
            gateway_run.announce(gateway, bus, hint)
            with gateway_run.stop_on_signals(stop):
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
@click.option("--replay-log", default="", metavar="NAME",
              help="The broker's log keeping the replay on rabbit:// (a stream queue) and "
                   "nats:// (a JetStream stream), shared by the gateways naming it, so a "
                   "client resumes on any of them [default: <pool>.replay; none: keep it "
                   "in this process].")
@click.option("--replay-max-age", default=24 * 3600.0, show_default=True,
              type=click.FloatRange(1), help="Seconds the replay log keeps an event.")
@click.option("--replay-max-bytes", default=1024 ** 3, show_default=True,
              type=click.IntRange(1024 * 1024), help="Bytes the replay log keeps.")
@click.option("--client-queue", default=1000, show_default=True, type=click.IntRange(1),
              help="Events a client may have waiting before its oldest are dropped.")
@click.option("--client-queue-bytes", default=4 * 1024 * 1024, show_default=True,
              type=click.IntRange(1), help="The same bound on a client's queue, in bytes.")
@click.option("--write-timeout", default=10.0, show_default=True,
              type=click.FloatRange(0.1),
              help="Seconds a write to a client may stall before the client is let go.")
@click.option("--max-connections", default=10_000, show_default=True,
              type=click.IntRange(1),
              help="Concurrent connections; beyond, HTTP 503 (open-files limit raised to match).")
@click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds a connection has to send its request headers (slowloris).")
@click.option("--allow-origin", "allowed_origins", multiple=True,
              help="A web origin (https://ui.example.com, or *) whose pages may use /ws, "
                   "/events and /publish; repeatable (default: the gateway's own only).")
@click.option("--token", default=None, envvar="RELAYBUS_FIREHOSE_TOKEN",
              help="Token needed to subscribe (default: subscribing is open).")
@click.option("--publish-token", default=None, envvar="RELAYBUS_FIREHOSE_PUBLISH_TOKEN",
              help="Token needed to publish through the gateway (default: nobody can).")
@click.option("--tokens-file", default=None, envvar="RELAYBUS_FIREHOSE_TOKENS_FILE",
              type=click.Path(dir_okay=False),
              help="TOML file of tokens scoped to topic filters, for subscribing and "
                   "publishing (docs/protocol/cloudevents.md); closes the gateway to clients "
                   "without a token unless its [anonymous] table opens part of it.")
@click.option("--max-frame", default=1024 * 1024, show_default=True, type=click.IntRange(64),
              help="Largest WebSocket frame or POST body accepted, in bytes.")
@click.pass_context
def firehose(ctx: click.Context, url: str | None, mqtt: str | None, http: str,
             topics: tuple[str, ...],
             exchange: str | None, pool: str, mqtt_topic: str, replay_events: int,
             replay_bytes: int, replay_log: str, replay_max_age: float,
             replay_max_bytes: int, client_queue: int, client_queue_bytes: int,
             write_timeout: float, max_connections: int, header_timeout: float,
             allowed_origins: tuple[str, ...],
             token: str | None,
             publish_token: str | None, tokens_file: str | None, max_frame: int) -> None:
    """Republish every notification as CloudEvents to MQTT, WebSocket and SSE clients."""
    gateway = gateway_run.gateway_module()
    options = gateway.GatewayOptions(
        topics=_split(topics) or ["notifications"], exchange=exchange, pool=pool, http=http,
        mqtt=mqtt, mqtt_topic=mqtt_topic, replay_events=replay_events,
        replay_bytes=replay_bytes, replay_log=replay_log, replay_max_age=replay_max_age,
        replay_max_bytes=replay_max_bytes, client_queue=client_queue,
        client_queue_bytes=client_queue_bytes, write_timeout=write_timeout,
        max_connections=max_connections, header_timeout=header_timeout,
        allowed_origins=allowed_origins, token=token,
        publish_token=publish_token, tokens_file=tokens_file, max_frame=max_frame)
    try:
        # Check every option now, before connecting to anything.
        gateway.service.parse_hostport(http)
        gateway.topics.TopicTemplate(mqtt_topic)
        if mqtt:
            gateway.mqtt.MqttURL.parse(mqtt)
        gateway.auth.Tokens(token, publish_token, gateway.auth.load_tokens_file(tokens_file)
                            if tokens_file else None)
        gateway.origins.Origins(allowed_origins)
        gateway.limits.ConnectionLimits(max_connections, header_timeout).raise_open_files()
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from None
    settings = settings_from(ctx, url=url)
    connect_options = {}
    if settings.sources["control_exchange"] != "default":  # else the URL's own, if any
        connect_options["control_exchange"] = settings.control_exchange
    gateway_run.run(lambda: serve_firehose(settings.url, options, **connect_options))
