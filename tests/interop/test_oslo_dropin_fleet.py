"""Mixed fleets: a nova-style program written against oslo.messaging's API (tests/interop/
dropin/fleet.py) runs as separate processes, its servers on one implementation and its
client on the other, on RabbitMQ, configured from a real oslo.config file.

The all-oslo.messaging fleet is the baseline; a fleet with relaybus's drop-in on either
side must record exactly the same outcomes: every result, every exception a caller sees
(class, message, remote type), every cast, fanout and notification the servers and the
filtered and batch listeners received.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.broker, pytest.mark.interop]

DROPIN = Path(__file__).with_name("dropin")
FLEET = DROPIN / "fleet.py"
CLIENT_TIMEOUT = 50.0  # the client waits at most 20 s for what the servers observed
STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Fleet:
    """Which oslo_messaging module each side of the fleet imports."""

    servers: str
    client: str


BASELINE = Fleet(servers="oslo", client="oslo")


def _conf(tmp_path: Path, url: str, fleet: Fleet) -> Path:
    run = f"fleet_{fleet.servers}_{fleet.client}_{uuid.uuid4().hex[:8]}"
    text = (DROPIN / "fleet.conf").read_text().format(
        transport_url=url, exchange=run, topic=run)
    path = tmp_path / f"{run}.conf"
    path.write_text(text)
    return path


def _start_server(messaging: str, conf: Path, host: str, *extra: str) -> subprocess.Popen[str]:
    server = subprocess.Popen(
        [sys.executable, str(FLEET), "--messaging", messaging, "--config-file", str(conf),
         "server", "--host", host, *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if json.loads(line or "{}") != {"ready": True}:
        server.kill()
        _, stderr = server.communicate(timeout=STOP_TIMEOUT)
        pytest.fail(f"{messaging} server {host} did not start:\n{stderr[-4000:]}")
    return server


def _stop_server(server: subprocess.Popen[str], host: str) -> str:
    """Close the server's stdin (its signal to stop) and return its stderr."""
    try:
        stdout, stderr = server.communicate(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        stdout, stderr = server.communicate()
        pytest.fail(f"server {host} did not stop within {STOP_TIMEOUT} s:\n{stderr[-4000:]}")
    assert json.loads(stdout.strip().splitlines()[-1]) == {"stopped": host}, stderr[-4000:]
    assert server.returncode == 0, stderr[-4000:]
    return stderr


def run_fleet(tmp_path: Path, url: str, fleet: Fleet) -> dict[str, Any]:
    """Two servers (host1 with the listeners) and one client; the client's record."""
    conf = _conf(tmp_path, url, fleet)
    servers = {"host1": _start_server(fleet.servers, conf, "host1", "--listeners")}
    try:
        servers["host2"] = _start_server(fleet.servers, conf, "host2")
        client = subprocess.run(
            [sys.executable, str(FLEET), "--messaging", fleet.client, "--config-file",
             str(conf), "client"],
            capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False)
    finally:
        # every server is stopped even when one of them fails its stop check (a server
        # left running would outlive the test and warn in a later one)
        failures: list[BaseException] = []
        for host, server in servers.items():
            try:
                _stop_server(server, host)
            except BaseException as exc:  # noqa: BLE001 - raised below, after the others
                failures.append(exc)
        if failures:
            raise failures[0]
    assert client.returncode == 0, client.stderr[-4000:]
    return json.loads(client.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def baseline(vhost: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The all-oslo.messaging fleet's record, checked against what oslo is known to do."""
    record = run_fleet(tmp_path_factory.mktemp("baseline"),
                       f"rabbit://guest:guest@127.0.0.1:5672/{vhost}", BASELINE)
    # the record must show the behaviour the fleet exists to compare, not a broken run
    assert record["directed.host2"] == {"result": "host2"}
    assert record["threads.rendezvous"] == {"result": [8] * 8}
    assert record["resize_over_cap"]["raised"]["is"] == ["MessagingException",
                                                         "RPCVersionCapError"]
    host1 = record["observed.host1"]["result"]
    assert len(host1["filtered"]) == 9 and len(host1["batch"]) == 7
    assert host1["batch_sizes"] is True
    return record


def _differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    return [f"{step}:\n  oslo.messaging fleet: {expected.get(step)}\n"
            f"  this fleet:           {actual.get(step)}"
            for step in sorted(set(expected) | set(actual))
            if expected.get(step) != actual.get(step)]


@pytest.mark.parametrize("fleet", [
    Fleet(servers="relaybus", client="oslo"),
    Fleet(servers="oslo", client="relaybus"),
    Fleet(servers="relaybus", client="relaybus"),
], ids=lambda fleet: f"servers-{fleet.servers}-client-{fleet.client}")
def test_oslo_dropin_fleet_matches_oslo(fleet: Fleet, baseline: dict[str, Any], url: str,
                                        tmp_path: Path) -> None:
    record = run_fleet(tmp_path, url, fleet)
    assert not _differences(baseline, record), "\n".join(_differences(baseline, record))


def test_oslo_dropin_fleet_baseline_is_repeatable(baseline: dict[str, Any], url: str,
                                                 tmp_path: Path) -> None:
    """The record does not depend on timing: a second all-oslo fleet records the same."""
    record = run_fleet(tmp_path, url, BASELINE)
    assert not _differences(baseline, record), "\n".join(_differences(baseline, record))
