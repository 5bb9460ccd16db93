"""``relaybus bench``: the standard workloads against any transport."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from relaybus import bench as workloads
from relaybus import loops
from relaybus.cli.common import json_option, run, settings_from, url_option


@click.command()
@click.option("--scale", type=float, default=0.2, show_default=True,
              help="Multiply the message counts (1.0: 2,000 / 20,000 / 50,000 / 50,000).")
@click.option("--rounds", type=int, default=3, show_default=True,
              help="Rounds per workload; the medians are shown.")
@url_option
@json_option
@click.pass_context
def bench(ctx: click.Context, scale: float, rounds: int, url: str | None,
          as_json: bool) -> None:
    """Measure call latency and call, cast and notification throughput."""
    settings = settings_from(ctx, url=url)
    loop = loops.choose()
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task(f"benchmarking {settings.masked()['url']}",
                            total=rounds * len(workloads.WORKLOADS))
        figures = run(workloads.run(settings.url, scale=scale, rounds=rounds,
                                    progress=lambda _name: bar.advance(task),
                                    control_exchange=settings.control_exchange),
                      as_json, loop=loop)
    ratios = workloads.ratios(figures)
    if as_json:
        click.echo(json.dumps({"url": settings.masked()["url"], "scale": scale,
                               "rounds": rounds, "loop": loop.name,
                               "loop_version": loop.version, "figures": figures,
                               "ratios": ratios}))
        return
    table = Table(title=f"relaybus bench on {settings.masked()['url']} "
                        f"(median of {rounds}, scale {scale}, loop {loop.describe()})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, f"{value:,.1f}" if name.endswith("cpu_us") else f"{value:,.0f}")
    for name, value in ratios.items():
        table.add_row(name, f"{value:.2f}x")
    Console().print(table)
    Console().print("floor: the same sequential request/reply on bare asyncio (a queue and a "
                    "JSON round trip each way) in this process; cpu: this process's CPU time "
                    "per call, client and server together")
    if any(name.startswith(workloads.RAW_NATS) for name in figures):
        Console().print("raw nats-py: the same calls and notifications with plain nats-py "
                        "(request/reply; JetStream publish and a pull consumer acking each "
                        "message) on the same NATS servers, in each round after relaybus's")
