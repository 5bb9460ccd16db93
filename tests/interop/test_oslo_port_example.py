"""examples/oslo_port: a service written for oslo.messaging, ported by its one import line.

The test makes the port itself: it copies ``inventory.py`` and replaces the single
``import oslo_messaging`` line with ``from relaybus import oslo_messaging``, changing
nothing else. Both copies then run on ``fake://`` (server and client in one process, as
services' unit tests use it) and on RabbitMQ (server and client as separate processes,
each of either library), and must print the same results.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.interop

EXAMPLE = Path(__file__).parents[2] / "examples" / "oslo_port"
ORIGINAL_IMPORT = "import oslo_messaging"
PORTED_IMPORT = "from relaybus import oslo_messaging"
TIMEOUT = 40.0

EXPECTED = {
    "stock": 5,
    "reserve": 2,
    "too_many": "OutOfStock",
    "restocked": True,
    "after_restock": 6,
    "notifications": [["inventory.inventory1", "inventory.item.reserved", "widget", 3],
                      ["inventory.inventory1", "inventory.item.restocked", "widget", 4]],
}


def _service(tmp_path: Path, library: str) -> Path:
    """The example's service as shipped (oslo) or ported by its one import line."""
    source = (EXAMPLE / "inventory.py").read_text()
    lines = source.splitlines(keepends=True)
    imports = [n for n, line in enumerate(lines) if line.startswith(ORIGINAL_IMPORT + " ")
               or line.strip() == ORIGINAL_IMPORT]
    assert len(imports) == 1, "the example must import oslo_messaging on exactly one line"
    assert "oslo_messaging" not in "".join(lines[:imports[0]]), "a second import line"
    if library == "relaybus":
        lines[imports[0]] = PORTED_IMPORT + "\n"
    path = tmp_path / library / "inventory.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(lines))
    return path


def _conf(tmp_path: Path, transport_url: str) -> Path:
    """The example's config file, with another transport URL and a topic of this run."""
    run = f"inventory_{uuid.uuid4().hex[:8]}"
    text = (EXAMPLE / "inventory.conf").read_text()
    text = text.replace("transport_url = fake://", f"transport_url = {transport_url}")
    text = text.replace("control_exchange = inventory", f"control_exchange = {run}")
    text = text.replace("topic = inventory\n", f"topic = {run}\n")
    text = text.replace("topics = inventory_notifications", f"topics = {run}_notifications")
    path = tmp_path / f"{run}.conf"
    path.write_text(text)
    return path


def _results(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("library", ["oslo", "relaybus"])
def test_oslo_port_example_on_fake(library: str, tmp_path: Path) -> None:
    service = _service(tmp_path, library)
    done = subprocess.run(
        [sys.executable, str(service), "--config-file", str(_conf(tmp_path, "fake://")),
         "demo"], capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert _results(done) == EXPECTED


@pytest.mark.broker
@pytest.mark.parametrize(("server_library", "client_library"), [
    ("oslo", "oslo"), ("relaybus", "relaybus"), ("relaybus", "oslo"), ("oslo", "relaybus")])
def test_oslo_port_example_on_rabbit(server_library: str, client_library: str, url: str,
                                     tmp_path: Path) -> None:
    conf = _conf(tmp_path, url)
    server = subprocess.Popen(
        [sys.executable, str(_service(tmp_path, server_library)), "--config-file", str(conf),
         "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert json.loads(ready or "{}") == {"ready": True}, "the server did not start"
        done = subprocess.run(
            [sys.executable, str(_service(tmp_path, client_library)), "--config-file",
             str(conf), "client"], capture_output=True, text=True, timeout=TIMEOUT,
            check=False)
    finally:
        try:
            _, server_stderr = server.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            _, server_stderr = server.communicate()
    assert server.returncode == 0, server_stderr[-4000:]
    assert _results(done) == EXPECTED
