"""relaybus's oslo.messaging drop-in against oslo.messaging itself, in one run.

    python benchmarks/oslo_dropin_bench.py [--scale 1.0] [--rounds 3] [--json] [--check]

The same program, written as oslo.messaging users write it (blocking calls from native
threads, servers on the "threading" executor, configuration from an oslo.config file),
runs once with ``import oslo_messaging`` and once with ``from relaybus import
oslo_messaging``; nothing else differs. Each round starts a server process and a client
process per library, against the broker at 127.0.0.1:5672, and the rounds interleave
the libraries (drop-in, oslo, drop-in, ...) so a noisy neighbour weighs on both alike.
The four workloads and their counts are those of benchmarks/rabbit_peers.py:

1. sequential calls (p50/p99 latency, calls/s);
2. calls from 64 caller threads;
3. casts from 64 sender threads, until the server has received them all;
4. notifications from 64 sender threads, until the listener has received them all.

The table shows the median of the rounds and the ratio drop-in/oslo (above 1 is better
for the drop-in, except for latencies and memory). The issue's target is a ratio of at
least 5 on calls from 64 callers, casts and notifications; ``--check`` exits 1 when a
ratio misses it. ``--scale 0.1`` runs a tenth of the messages, for a quick smoke test.

Both libraries get the same configuration file: a send pool of 64 connections
(``rpc_conn_pool_size``, as benchmarks/rabbit_peers.py gives oslo.messaging), everything
else at oslo.messaging's defaults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rabbit_bench import _lines, _load
from rabbit_peers import ARG, CONCURRENCY, URL, WARMUP, Tally, counts, emit, peak_rss_mb

LIBRARIES = ("dropin", "oslo")
TARGET = 5.0
TARGETED = ("concurrent_calls_per_s", "casts_per_s", "notifications_per_s")
ROWS = [  # (key, label, format)
    ("seq_p50_us", "1. sequential call p50 (us)", "{:,.0f}"),
    ("seq_p99_us", "1. sequential call p99 (us)", "{:,.0f}"),
    ("seq_calls_per_s", "1. sequential calls/s", "{:,.0f}"),
    ("concurrent_calls_per_s", "2. calls/s, 64 caller threads", "{:,.0f}"),
    ("casts_per_s", "3. casts/s until received", "{:,.0f}"),
    ("notifications_per_s", "4. notifications/s until received", "{:,.0f}"),
    ("server_rss_mb", "peak RSS, server (MB)", "{:,.1f}"),
    ("client_rss_mb", "peak RSS, client (MB)", "{:,.1f}"),
]
CONF = f"""[DEFAULT]
transport_url = {URL}

[oslo_messaging_rabbit]
rpc_conn_pool_size = {CONCURRENCY}
"""


# -- the peers: one program, two modules ------------------------------------------------------

def _messaging(library: str, conf_file: str) -> tuple[Any, Any]:
    """The oslo_messaging module of ``library`` and the global CONF, read from the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # oslo's import chain warns about eventlet
        if library == "dropin":
            from relaybus import oslo_messaging
        else:
            import oslo_messaging
        from oslo_config import cfg
    cfg.CONF(["--config-file", conf_file], project="relaybus-bench")
    return oslo_messaging, cfg.CONF


def server(library: str, conf_file: str, topic: str) -> None:
    om, conf = _messaging(library, conf_file)
    tally = Tally()

    class Endpoint:
        def echo(self, ctxt: Any, value: Any) -> Any:
            return value

        def record(self, ctxt: Any, value: Any) -> None:
            tally.add("casts")

        def received(self, ctxt: Any, kind: str, n: int) -> float:
            return tally.wait_blocking(kind, n)

    class Listener:
        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: Any) -> None:
            tally.add("notifications")

    rpc_transport = om.get_rpc_transport(conf)
    notify_transport = om.get_notification_transport(conf)
    consumers = [
        # the executor is oslo's default, "threading" (oslo 18 deprecates passing it)
        om.get_rpc_server(rpc_transport, om.Target(topic=topic, server="s1"), [Endpoint()]),
        om.get_notification_listener(notify_transport, [om.Target(topic=topic)], [Listener()]),
    ]
    for consumer in consumers:
        consumer.start()
    emit(ready=True)
    sys.stdin.read()
    for consumer in consumers:
        consumer.stop()
        consumer.wait()
    rpc_transport.cleanup()
    notify_transport.cleanup()
    emit(peak_rss_mb=peak_rss_mb())


def client(library: str, conf_file: str, topic: str, n: dict[str, int]) -> None:
    import time

    om, conf = _messaging(library, conf_file)
    transport = om.get_rpc_transport(conf)
    rpc = om.get_rpc_client(transport, om.Target(topic=topic), timeout=60)
    notify_transport = om.get_notification_transport(conf)
    notifier = om.Notifier(notify_transport, publisher_id="bench.client",
                           driver="messagingv2", topics=[topic])
    context = {"user": "bench"}

    def call(_: object = None) -> Any:
        return rpc.call(context, "echo", value=ARG)

    for _ in range(WARMUP):
        call()
    latencies = []
    started = time.perf_counter()
    for _ in range(n["sequential"]):
        t = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t)
    seq_elapsed = time.perf_counter() - started
    latencies.sort()
    results = {
        "seq_p50_us": latencies[len(latencies) // 2] * 1e6,
        "seq_p99_us": latencies[int(len(latencies) * 0.99)] * 1e6,
        "seq_calls_per_s": n["sequential"] / seq_elapsed,
    }
    with ThreadPoolExecutor(CONCURRENCY) as threads:
        started = time.perf_counter()
        list(threads.map(call, range(n["concurrent"])))
        results["concurrent_calls_per_s"] = n["concurrent"] / (time.perf_counter() - started)
        sends = {"casts": lambda _: rpc.cast(context, "record", value=ARG),
                 "notifications": lambda _: notifier.info(context, "bench.event",
                                                          {"value": ARG})}
        for kind, send in sends.items():
            started_mono = time.monotonic()
            list(threads.map(send, range(n[kind])))
            # the server answers with its monotonic clock once the last one has arrived
            last = rpc.call(context, "received", kind=kind, n=n[kind])
            results[f"{kind}_per_s"] = n[kind] / (last - started_mono)
    transport.cleanup()
    notify_transport.cleanup()
    emit(results=results, peak_rss_mb=peak_rss_mb())


# -- the run ------------------------------------------------------------------------------------

def one_round(library: str, conf_file: str, scale: float) -> dict[str, float]:
    """One server and one client process of ``library``; the client's results."""
    topic = f"bench_oslo_{library}_{uuid.uuid4().hex[:8]}"
    base = [sys.executable, __file__, "peer", library]
    extra = ["--conf", conf_file, "--topic", topic, "--scale", str(scale)]
    server_process = subprocess.Popen([*base, "server", *extra], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
    try:
        if not _lines(server_process).get("ready"):
            raise RuntimeError(f"{library} server did not start")
        done = subprocess.run([*base, "client", *extra], capture_output=True, text=True,
                              timeout=1800, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{library} client failed:\n{done.stderr[-3000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        assert server_process.stdin is not None
        server_process.stdin.close()
    server_report = _lines(server_process)
    server_process.wait(timeout=60)
    results = dict(report["results"])
    results["client_rss_mb"] = report["peak_rss_mb"]
    results["server_rss_mb"] = server_report["peak_rss_mb"]
    return results


def run(scale: float, rounds: int) -> dict[str, dict[str, float]]:
    runs: dict[str, list[dict[str, float]]] = {library: [] for library in LIBRARIES}
    with tempfile.TemporaryDirectory() as directory:
        conf_file = str(Path(directory) / "bench.conf")
        Path(conf_file).write_text(CONF)
        for number in range(rounds):
            for library in LIBRARIES:
                print(f"  round {number + 1} of {rounds}: {library}... (load {_load()})",
                      file=sys.stderr, flush=True)
                runs[library].append(one_round(library, conf_file, scale))
    return {library: {key: statistics.median(r[key] for r in done) for key in done[0]}
            for library, done in runs.items()}


def ratios(medians: dict[str, dict[str, float]]) -> dict[str, float]:
    return {key: medians["dropin"][key] / medians["oslo"][key] for key, _, _ in ROWS}


def table(medians: dict[str, dict[str, float]]) -> str:
    head = f"{'':38}{'drop-in':>12}{'oslo':>12}{'drop-in/oslo':>16}"
    lines = [head, "-" * len(head)]
    for key, label, fmt in ROWS:
        mark = f"  (target >= {TARGET:g}x)" if key in TARGETED else ""
        lines.append(f"{label:38}{fmt.format(medians['dropin'][key]):>12}"
                     f"{fmt.format(medians['oslo'][key]):>12}"
                     f"{ratios(medians)[key]:>15.2f}x{mark}")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["peer"]:
        peer = argparse.ArgumentParser()
        peer.add_argument("library", choices=LIBRARIES)
        peer.add_argument("role", choices=["server", "client"])
        peer.add_argument("--conf", required=True)
        peer.add_argument("--topic", required=True)
        peer.add_argument("--scale", type=float, default=1.0)
        args = peer.parse_args(sys.argv[2:])
        if args.role == "server":
            server(args.library, args.conf, args.topic)
        else:
            client(args.library, args.conf, args.topic, counts(args.scale))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are shown")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 unless the drop-in is >= {TARGET:g}x oslo on the "
                             "targeted workloads")
    args = parser.parse_args()
    medians = run(args.scale, args.rounds)
    if args.json:
        print(json.dumps({"medians": medians, "ratios": ratios(medians)}, indent=2))
    else:
        print(f"oslo.messaging drop-in benchmark on RabbitMQ, median of {args.rounds} rounds, "
              f"scale {args.scale}, threads as oslo users write them")
        print(table(medians))
    missed = [key for key in TARGETED if ratios(medians)[key] < TARGET]
    if missed:
        print(f"target missed ({TARGET:g}x): {', '.join(missed)}", file=sys.stderr)
    if args.check and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
