"""``relaybus serve``: run a service until SIGTERM or SIGINT, then drain and exit 0."""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import socket
import sys

import click

import relaybus
from relaybus.cli import logs
from relaybus.cli.common import MEMORY_NOTE, fail, in_process, settings_from, url_option
from relaybus.contracts.loading import LoadError, as_service, load_object

LOG = logging.getLogger("relaybus.serve")


def _instantiate(endpoints: list[object]) -> list[object]:
    ready = []
    for endpoint in endpoints:
        if inspect.isclass(endpoint):
            cls = endpoint
            try:
                endpoint = cls()
            except TypeError as exc:
                raise LoadError(f"cannot create {cls.__name__}() without arguments: "
                                f"{exc}; give an instance or a relaybus.Service") from None
        ready.append(endpoint)
    return ready


@click.command()
@click.argument("reference", metavar="MODULE:OBJECT")
@click.option("--topic", default=None, help="Topic (needed when OBJECT is an endpoint).")
@click.option("--server", default=None, help="This server's name (default: the host name).")
@click.option("--workers", type=int, default=None, help="Requests handled at once.")
@click.option("--drain-timeout", type=float, default=None,
              help="Seconds to let requests in progress finish on shutdown.")
@click.option("--metrics-port", type=int, default=None,
              help="Serve Prometheus metrics over HTTP on this port.")
@click.option("--metrics-addr", default=None, help="Address for the metrics port.")
@click.option("--log-level", default=None, help="debug, info, warning or error.")
@click.option("--log-format", default=None, help="text or json.")
@url_option
@click.pass_context
def serve(ctx: click.Context, reference: str, topic: str | None, server: str | None,
          workers: int | None, drain_timeout: float | None, metrics_port: int | None,
          metrics_addr: str | None, log_level: str | None, log_format: str | None,
          url: str | None) -> None:
    """Serve a relaybus.Service (or an endpoint with --topic) until stopped.

    SIGTERM or SIGINT stops taking requests, lets those in progress finish (up to
    --drain-timeout), then exits 0.
    """
    settings = settings_from(ctx, url=url, workers=workers, drain_timeout=drain_timeout,
                             metrics_port=metrics_port, metrics_addr=metrics_addr,
                             log_level=log_level, log_format=log_format)
    logs.configure(settings.log_level, settings.log_format)
    try:
        service = as_service(load_object(reference), topic=topic,
                             server=server or socket.gethostname())
        endpoints = _instantiate(service.endpoints)
    except LoadError as exc:
        fail(ValueError(str(exc)))
    if not endpoints:
        fail(ValueError(f"{service.name} has no endpoints to serve"))
    if settings.metrics_port is not None:
        try:
            import prometheus_client
        except ImportError:
            fail(ValueError("--metrics-port needs prometheus-client: "
                            "pip install 'relaybus[ops]'"))
        try:
            prometheus_client.start_http_server(settings.metrics_port, settings.metrics_addr)
        except OSError as exc:
            fail(ValueError(f"--metrics-port {settings.metrics_port}: cannot listen on "
                            f"{settings.metrics_addr}:{settings.metrics_port} "
                            f"({exc.strerror or exc}); choose another port"))

    async def go() -> None:
        async with await relaybus.connect(settings.url,
                                          control_exchange=settings.control_exchange) as bus:
            rpc = bus.rpc_server(service.target, endpoints, max_concurrency=settings.workers,
                                 drain_timeout=settings.drain_timeout)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await rpc.start()
            LOG.info("serving %s on %s as %s (%s)", service.name, service.target.topic,
                        service.target.server, bus.url,
                        extra={"topic": service.target.topic, "server": service.target.server})
            print(f"ready: {service.name} on {service.target.topic}.{service.target.server}",
                  file=sys.stderr, flush=True)
            if in_process(settings.url):
                LOG.warning("%s", MEMORY_NOTE)  # a log line: --log-format json stays JSON
            await stop.wait()
            LOG.warning("stopping: no new requests; letting %d in progress finish",
                        rpc.executor.in_flight)
            await rpc.stop()
            await rpc.wait()
            LOG.warning("stopped")

    try:
        asyncio.run(go())
    except relaybus.MessagingError as exc:
        fail(exc)
