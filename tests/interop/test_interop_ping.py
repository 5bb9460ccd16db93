"""``relaybus ping`` against servers of every kind on RabbitMQ: ``relaybus serve --ping``
(a process), a real oslo.messaging server with ``rpc_ping_enabled = True`` and the
oslo.messaging drop-in with the same option; who answers, and the exit code when one
does not (ping off: 1; no such server: 4). ``--all``: one fanout ping that every one of
them answers, relaybus's servers by name, oslo's unnamed."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

import relaybus.oslo_messaging as dropin
from relaybus import Target
from relaybus.testing.behaviour import Compute

pytestmark = [pytest.mark.broker, pytest.mark.interop]

ROOT = Path(__file__).resolve().parents[2]


class Hosts:
    def whoami(self, ctxt: Any) -> str:
        return "oslo"


def relaybus_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    return subprocess.run([sys.executable, "-m", "relaybus", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=env)


@pytest.fixture
def oslo_ping_enabled() -> Iterator[None]:
    # oslo.messaging's dispatcher reads the option from its global CONF
    from oslo_messaging.rpc import dispatcher as oslo_dispatcher

    cfg.CONF.register_opts(oslo_dispatcher._dispatcher_opts)
    cfg.CONF.set_override("rpc_ping_enabled", True)
    try:
        yield
    finally:
        cfg.CONF.clear_override("rpc_ping_enabled")


@pytest.fixture
def dropin_server(url: str, topic: str) -> Iterator[Any]:
    conf = cfg.ConfigOpts()
    conf([], project="relaybus-ping", default_config_files=[], default_config_dirs=[])
    transport = dropin.get_rpc_transport(conf, url=url)
    conf.set_override("rpc_ping_enabled", True)
    server = dropin.get_rpc_server(transport, dropin.Target(topic=topic, server="dropin"),
                                   [Hosts()])
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


async def test_ping_reports_each_kind_of_server(url: str, topic: str, oslo: Any,
                                                oslo_ping_enabled: None,
                                                dropin_server: Any, bus: Any) -> None:
    await oslo.rpc_server(topic, "oslo", [Hosts()])
    await bus.rpc_server(Target(topic=topic, server="native"), [Compute("n")],
                         ping=True).start()
    await bus.rpc_server(Target(topic=topic, server="quiet"), [Compute("q")]).start()

    answered = await asyncio.to_thread(
        relaybus_cmd, "ping", topic, "--url", url, "--server", "oslo", "--server", "native",
        "--server", "dropin", "--json")
    assert answered.returncode == 0, answered.stderr
    lines = [json.loads(line) for line in answered.stdout.splitlines()]
    assert [(a["server"], a["ok"], a["reply"]) for a in lines] == \
        [("oslo", True, "pong"), ("native", True, "pong"), ("dropin", True, "pong")]
    assert all(a["ms"] > 0 for a in lines)

    text = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--url", url,
                                   "--server", "oslo")
    assert text.returncode == 0 and text.stdout.startswith(f"{topic}.oslo: pong in ")
    assert text.stdout.rstrip().endswith(" ms")

    # ping off: the server answers that the method does not exist (exit 1); no such
    # server: nobody listens (exit 4); the line of each says which
    mixed = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--url", url,
                                    "--server", "native", "--server", "quiet",
                                    "--server", "gone", "--timeout", "5")
    assert mixed.returncode == 1, mixed.stderr
    assert mixed.stdout.startswith(f"{topic}.native: pong in ")
    quiet, gone = mixed.stderr.splitlines()
    assert quiet.startswith(f"{topic}.quiet: NoSuchMethod: it answers, but its ping is off")
    assert gone.startswith(f"{topic}.gone: MessageUndeliverable")
    nobody = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--url", url,
                                     "--server", "gone")
    assert nobody.returncode == 4


def test_a_relaybus_serve_process_answers_with_ping_on(url: str, topic: str) -> None:
    serve = subprocess.Popen(
        [sys.executable, "-m", "relaybus", "serve", "examples.compute.service:compute",
         "--topic", topic, "--server", "proc", "--url", url, "--ping"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stderr is not None
        line = serve.stderr.readline()
        assert line.startswith("ready:"), line
        anyone = relaybus_cmd("ping", topic, "--url", url)
        assert anyone.returncode == 0, anyone.stderr
        assert anyone.stdout.startswith(f"{topic} (any server): pong in ")
    finally:
        serve.terminate()
        serve.wait(30)
        if serve.stderr is not None:
            serve.stderr.close()
    assert serve.returncode == 0


async def test_bad_input_is_one_line_exit_2(url: str, topic: str) -> None:
    twice = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--url", url,
                                    "--server", "a", "--server", "a")
    assert twice.returncode == 2 and twice.stderr.count("\n") == 1
    assert "twice" in twice.stderr
    for wrong in (["--all", "--server", "a"], ["--all", "--timeout", "1"], ["--wait", "1"],
                  ["--all", "--wait", "0"], ["--all", "--wait", "61"], ["--all", "--limit", "0"]):
        refused = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--url", url, *wrong)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, (wrong, refused)


async def test_ping_all_lists_every_server_of_the_topic(url: str, topic: str, oslo: Any,
                                                        oslo_ping_enabled: None,
                                                        dropin_server: Any,
                                                        bus: Any,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    await oslo.rpc_server(topic, "oslo", [Hosts()])
    for name in ("r1", "r2"):
        await bus.rpc_server(Target(topic=topic, server=name), [Compute(name)],
                             ping=True).start()

    text = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--all", "--url", url)
    assert text.returncode == 0, text.stderr
    *lines, summary = text.stdout.splitlines()
    assert summary == "4 answered within 1 s"
    named = sorted(line.split(" ", 1)[0] for line in lines if not line.startswith(
        f"{topic}: "))
    assert named == [f"{topic}.dropin", f"{topic}.r1", f"{topic}.r2"]
    assert all(f"(pid {os.getpid()} on " in line for line in lines if "(pid" in line)
    unnamed = [line for line in lines if line.startswith(f"{topic}: ")]
    assert len(unnamed) == 1
    assert unnamed[0].startswith(f"{topic}: an oslo.messaging server (unnamed): pong in ")
    assert all(line.endswith(" ms") for line in lines)

    as_json = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--all", "--url", url,
                                      "--json", "--wait", "2")
    assert as_json.returncode == 0, as_json.stderr
    answers = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert sorted(str(a["server"]) for a in answers) == ["None", "dropin", "r1", "r2"]
    assert all(a["ok"] and a["ms"] > 0 for a in answers)
    assert [a["reply"] for a in answers if a["server"] is None] == ["pong"]

    # a server whose ping is off answers too, NoSuchMethod: listed, exit 1
    await bus.rpc_server(Target(topic=topic, server="quiet"), [Compute("q")]).start()
    mixed = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--all", "--url", url)
    assert mixed.returncode == 1, mixed.stderr
    assert mixed.stdout.splitlines()[-1] == "5 answered within 1 s"
    assert mixed.stderr.startswith(f"{topic}: a server (unnamed): NoSuchMethod: it answers, "
                                   "but its ping is off")

    with caplog.at_level(logging.DEBUG, logger="oslo_messaging._drivers.amqpdriver"):
        limited = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--all", "--url",
                                          url, "--limit", "2", "--wait", "60")
        assert limited.stdout.splitlines()[-1] == \
            "2 answered within 60 s (stopped at --limit 2: more servers may be listening)"
        # the servers it no longer waited for answered all the same, after it exited: their
        # answers land in the reply queue it left to expire, so the oslo server does not
        # retry its reply for 60 s (it would log each try as a missing queue)
        again = await asyncio.to_thread(relaybus_cmd, "ping", topic, "--all", "--url", url)
        assert again.stdout.splitlines()[-1] == "5 answered within 1 s"
    assert "missing queue" not in caplog.text

    # nobody listens on a topic without servers: exit 4, one line
    nobody = await asyncio.to_thread(relaybus_cmd, "ping", f"{topic}_none", "--all",
                                     "--url", url)
    assert nobody.returncode == 4 and nobody.stdout == ""
    assert nobody.stderr.startswith(f"{topic}_none (all servers): MessageUndeliverable")
