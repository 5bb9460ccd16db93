"""``relaybus serve``: run a service until SIGTERM or SIGINT, then drain and exit 0.

With ``--health-port`` it answers Kubernetes-style probes (see :mod:`relaybus.health`):

- ``/startupz``: the endpoints are loaded and the server consumes (its queues declared);
- ``/readyz``: started, the broker connection is up, consuming, and not draining;
- ``/livez``: the event loop answers within a bound; a broker outage does not fail it
  (restarting the pod would not bring the broker back).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import socket
import sys
from typing import NoReturn

import click

import relaybus
from relaybus import loops, telemetry
from relaybus.cli import logs
from relaybus.cli.common import MEMORY_NOTE, fail, in_process, settings_from, url_option
from relaybus.cli.settings import CONFIG_ENV, Settings, env_name
from relaybus.cli.supervisor import Supervisor
from relaybus.contracts.loading import LoadError, as_service, load_object
from relaybus.health import HealthServer

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
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes, each with its own connection (sharing the server "
                   "name, as oslo.messaging's workers do); SIGTERM drains them all.")
@click.option("--reload", is_flag=True,
              help="Development: restart the worker(s) when the service's source changes.")
@click.option("--ping/--no-ping", default=None,
              help="Answer oslo.messaging's RPC ping (oslo_rpc_server_ping); see "
                   "`relaybus ping`.")
@click.option("--health-port", type=int, default=None,
              help="Answer /livez, /readyz and /startupz over HTTP on this port.")
@click.option("--health-addr", default=None,
              help="Address for the health port (default 127.0.0.1; 0.0.0.0 in a pod).")
@click.option("--log-level", default=None, help="debug, info, warning or error.")
@click.option("--log-format", default=None, help="text or json.")
@url_option
@click.pass_context
def serve(ctx: click.Context, reference: str, topic: str | None, server: str | None,
          workers: int | None, drain_timeout: float | None, metrics_port: int | None,
          metrics_addr: str | None, processes: int, reload: bool, ping: bool | None,
          health_port: int | None,
          health_addr: str | None,
          log_level: str | None, log_format: str | None, url: str | None) -> None:
    """Serve a relaybus.Service (or an endpoint with --topic) until stopped.

    SIGTERM or SIGINT stops taking requests, lets those in progress finish (up to
    --drain-timeout), then exits 0.
    """
    settings = settings_from(ctx, url=url, workers=workers, drain_timeout=drain_timeout,
                             metrics_port=metrics_port, metrics_addr=metrics_addr,
                             ping=ping, health_port=health_port, health_addr=health_addr,
                             log_level=log_level, log_format=log_format)
    logs.configure(settings.log_level, settings.log_format)
    if processes > 1 or reload:
        _supervise(reference, topic, server, settings, processes, reload)
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
        telemetry.enable_metrics()  # metrics are recorded only once someone exposes them

    async def go() -> None:
        state = _State()
        health = _start_health(settings, state) if settings.health_port is not None else None
        try:
            async with await relaybus.connect(settings.url,
                                              control_exchange=settings.control_exchange) as bus:
                rpc = bus.rpc_server(service.target, endpoints,
                                     max_concurrency=settings.workers,
                                     drain_timeout=settings.drain_timeout,
                                     ping=settings.ping)
                state.bus, state.rpc = bus, rpc
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, stop.set)
                await rpc.start()
                state.started = True
                LOG.info("serving %s on %s as %s (%s)", service.name, service.target.topic,
                         service.target.server, bus.url,
                         extra={"topic": service.target.topic,
                                "server": service.target.server})
                print(f"ready: {service.name} on {service.target.topic}."
                      f"{service.target.server}", file=sys.stderr, flush=True)
                if in_process(settings.url):
                    LOG.warning("%s", MEMORY_NOTE)  # a log line: --log-format json stays JSON
                await stop.wait()
                state.draining = True
                LOG.warning("stopping: no new requests; letting %d in progress finish",
                            rpc.executor.in_flight)
                await rpc.stop()
                await rpc.wait()
                LOG.warning("stopped")
        finally:
            if health is not None:
                await asyncio.to_thread(health.close)

    try:
        loops.run(go())
    except relaybus.MessagingError as exc:
        fail(exc)


def _supervise(reference: str, topic: str | None, server: str | None, settings: Settings,
               processes: int, reload: bool) -> NoReturn:
    """Check what a worker would refuse, then run the workers (see cli.supervisor)."""
    try:
        as_service(load_object(reference), topic=topic, server=server or "check")
    except LoadError as exc:
        fail(ValueError(str(exc)))
    if processes > 1:
        if in_process(settings.url):
            fail(ValueError(f"--processes {processes} needs a broker the processes share; "
                            f"{MEMORY_NOTE}"))
        for name in ("health_port", "metrics_port"):
            if settings.values[name] is not None:
                fail(ValueError(
                    f"--{name.replace('_', '-')} serves one process: with --processes "
                    f"{processes} each worker would need its own port (on Kubernetes, run "
                    "one process per pod and scale the replicas)"))
    # the workers get the resolved settings below, and the supervisor's event loop choice
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAYBUS_") or k == loops.ENV}
    for name, value in settings.values.items():
        if value is not None:
            env[env_name(name)] = str(value)
    env[CONFIG_ENV] = os.devnull  # the settings above are the resolved ones
    command = [sys.executable, "-m", "relaybus", "serve", reference,
               "--server", server or socket.gethostname()]
    if topic is not None:
        command += ["--topic", topic]
    watch = None
    if reload:
        module = sys.modules[reference.partition(":")[0]]
        top = sys.modules[module.__name__.partition(".")[0]]
        watch = (getattr(module, "__file__", None), list(getattr(top, "__path__", [])))
    sys.exit(loops.run(Supervisor(command, env, processes, watch).run()))


class _State:
    """What the probes read: set by ``serve`` as it starts, serves and drains."""

    def __init__(self) -> None:
        self.bus: relaybus.Bus | None = None
        self.rpc: relaybus.RPCServer | None = None
        self.started = False
        self.draining = False

    def startup_problem(self) -> str | None:
        if self.started:
            return None
        if self.bus is None:
            return "starting: connecting to the broker"
        return "starting: declaring the server's queues"

    def readiness_problem(self) -> str | None:
        problem = self.startup_problem()
        if problem is not None:
            return problem
        assert self.bus is not None and self.rpc is not None
        if self.draining:
            return "draining: taking no new requests, finishing those in progress"
        problem = self.bus.connection_problem()
        if problem is not None:
            return problem
        if not self.rpc.running:
            return "not consuming"
        return None


def _start_health(settings: Settings, state: _State) -> HealthServer:
    try:
        health = HealthServer(asyncio.get_running_loop(),
                              {"/livez": lambda: None, "/readyz": state.readiness_problem,
                               "/startupz": state.startup_problem},
                              host=settings.health_addr, port=settings.health_port)
    except OSError as exc:
        fail(ValueError(f"--health-port {settings.health_port}: cannot listen on "
                        f"{settings.health_addr}:{settings.health_port} "
                        f"({exc.strerror or exc}); choose another port"))
    health.start()
    LOG.info("health probes on http://%s:%d/ (livez, readyz, startupz)",
             settings.health_addr, health.port)
    return health
