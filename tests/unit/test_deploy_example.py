"""deploy/kubernetes: the example's probes, drain and grace period agree with each other
and with what ``relaybus serve`` accepts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from relaybus.cli.serve import serve

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "deployment.yaml"


def _container() -> tuple[dict[str, Any], dict[str, Any]]:
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]["template"]["spec"]
    return spec, spec["containers"][0]


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_probes_are_serves_on_its_health_port() -> None:
    _, container = _container()
    command = container["command"]
    assert command[:2] == ["relaybus", "serve"]
    assert _flag(command, "--health-addr") == "0.0.0.0"  # the kubelet reaches the pod's IP
    port = next(p for p in container["ports"] if p["name"] == "health")
    assert port["containerPort"] == int(_flag(command, "--health-port"))
    paths = {kind: container[kind]["httpGet"]["path"]
             for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert paths == {"startupProbe": "/startupz", "readinessProbe": "/readyz",
                     "livenessProbe": "/livez"}
    # every flag of the command exists
    flags = [word for word in command[2:] if word.startswith("--")]
    known = {opt for param in serve.params for opt in getattr(param, "opts", [])}
    assert set(flags) <= known


def test_the_drain_fits_in_the_hook_and_the_hook_in_the_grace_period() -> None:
    spec, container = _container()
    drain = float(_flag(container["command"], "--drain-timeout"))
    hook = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert "kill -TERM 1" in hook
    waits = re.search(r"seq (\d+)\)", hook)
    assert waits is not None and drain < int(waits[1])
    assert int(waits[1]) < spec["terminationGracePeriodSeconds"]

