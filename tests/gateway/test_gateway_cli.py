"""The command line: relaybus listen (from a gateway and from MQTT), demo --console, bad options."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import pytest
from firehose_support import (
    ROOT,
    WAIT,
    GatewayProcess,
    Mosquitto,
    SSEClient,
    event,
    ws_client,
    ws_events,
)

RELAYBUS = [sys.executable, "-m", "relaybus"]


class Listener:
    """``relaybus listen`` as a child process, started once it says it is listening."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, *args: str) -> Listener:
        process = await asyncio.create_subprocess_exec(
            *RELAYBUS, "listen", *args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=ROOT)
        assert process.stderr is not None
        async with asyncio.timeout(WAIT):
            while not (line := (await process.stderr.readline()).decode()).startswith(
                    "# listening"):
                assert line, "relaybus listen exited before listening"
        return cls(process)

    async def lines(self) -> list[str]:
        """Its output once it exits (after --count events)."""
        async with asyncio.timeout(WAIT):
            out, err = await self.process.communicate()
        assert self.process.returncode == 0, err.decode()
        return out.decode().splitlines()


@pytest.fixture
async def listeners() -> AsyncIterator[list[Listener]]:
    started: list[Listener] = []
    yield started
    for listener in started:
        if listener.process.returncode is None:
            listener.process.kill()
            await listener.process.wait()


async def test_listen_follows_a_gateway(start_gateway: Callable[..., GatewayProcess],
                                        listeners: list[Listener], name: str) -> None:
    gateway = start_gateway()
    plain = await Listener.start("nova/+/compute/#", "--gateway", gateway.url, "--count", "2")
    as_json = await Listener.start("nova/#", "--gateway", gateway.url, "--json", "--count", "3")
    listeners += [plain, as_json]
    await gateway.publish([event("compute.host1", "compute.instance.create.end", {"n": name}),
                           event("api", f"{name}.other"),
                           event("compute.host2", "compute.instance.delete.end", {"n": 2},
                                 "warn")])
    lines = await plain.lines()
    assert [line.split(" ")[1:4] for line in lines] == [
        ["nova/compute.host1/compute/instance/create/end", "info", "compute.instance.create.end"],
        ["nova/compute.host2/compute/instance/delete/end", "warn", "compute.instance.delete.end"]]
    assert lines[0].endswith(json.dumps({"n": name}, separators=(",", ":")))
    events = [json.loads(line) for line in await as_json.lines()]
    assert [e["type"] for e in events] == ["compute.instance.create.end", f"{name}.other",
                                           "compute.instance.delete.end"]
    assert all(e["specversion"] == "1.0" for e in events)


async def test_listen_starts_after_a_given_event(start_gateway: Callable[..., GatewayProcess],
                                                 listeners: list[Listener], name: str) -> None:
    gateway = start_gateway()
    async with ws_client(gateway.ws_url()) as websocket:
        await gateway.publish([event(name, f"{name}.{i}") for i in range(3)])
        first, _, _ = await ws_events(websocket, 3)
    listener = await Listener.start("--gateway", gateway.url, "--since", first["id"],
                                    "--json", "--count", "2")
    listeners.append(listener)
    assert [json.loads(line)["type"] for line in await listener.lines()] == [
        f"{name}.1", f"{name}.2"]


@pytest.mark.broker
async def test_listen_subscribes_on_mqtt(mosquitto: Mosquitto,
                                         start_gateway: Callable[..., GatewayProcess],
                                         listeners: list[Listener], name: str) -> None:
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)
    listener = await Listener.start("nova/+/compute/instance/#", "--mqtt",
                                    mosquitto.anonymous_url, "--count", "2")
    listeners.append(listener)
    await gateway.publish([event("compute.host1", "compute.instance.create.end", {"n": 1}),
                           event("scheduler", f"{name}.skip"),
                           event("compute.host9", "compute.instance.reboot.start", {"n": 2})])
    lines = await listener.lines()
    assert [line.split(" ")[1] for line in lines] == [
        "nova/compute.host1/compute/instance/create/end",
        "nova/compute.host9/compute/instance/reboot/start"]



@pytest.mark.broker
async def test_listen_with_a_session_gets_what_came_while_it_was_away(
        mosquitto: Mosquitto, start_gateway: Callable[..., GatewayProcess],
        listeners: list[Listener], name: str) -> None:
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)
    session = ["nova/#", "--mqtt", mosquitto.anonymous_url, "--session", name, "--json"]
    first = await Listener.start(*session, "--count", "1")
    listeners.append(first)
    await gateway.publish([event("compute.host1", f"{name}.one")])
    assert [json.loads(line)["type"] for line in await first.lines()] == [f"{name}.one"]
    # nobody listens now: the broker keeps these for the session
    await gateway.publish([event("compute.host1", f"{name}.two"),
                           event("compute.host1", f"{name}.three")])
    again = await Listener.start(*session, "--count", "2")
    listeners.append(again)
    assert [json.loads(line)["type"] for line in await again.lines()] == [
        f"{name}.two", f"{name}.three"]

def test_listen_refuses_bad_arguments() -> None:
    for args, message in [(["nova/#/x"], "'#' must be a whole level"),
                          (["--gateway", "http://x", "--mqtt", "mqtt://x"], "not both"),
                          (["--mqtt", "http://x"], "expected mqtt://"),
                          (["--session", "s"], "--session needs --mqtt"),
                          (["--mqtt", "mqtt://x", "--session", "a b"], "1 to 64 letters")]:
        result = subprocess.run([*RELAYBUS, "listen", *args], capture_output=True, text=True,
                                timeout=WAIT)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_listen_says_when_the_gateway_refuses() -> None:
    gateway = GatewayProcess(["--bus", "memory://", "--token", "secret"]).start()
    try:
        result = subprocess.run([*RELAYBUS, "listen", "--gateway", gateway.url, "--token",
                                 "wrong"], capture_output=True, text=True, timeout=WAIT)
    finally:
        gateway.stop()
    assert result.returncode == 1
    assert "the gateway refused: the token is not valid" in result.stderr


def test_firehose_refuses_bad_options() -> None:
    for args, message in [(["--mqtt-topic", "{nope}/x"], "unknown field {nope}"),
                          (["--mqtt-topic", "a/#"], "without + or #"),
                          (["--http", "nowhere"], "expected host:port"),
                          (["--mqtt", "amqp://x"], "expected mqtt://"),
                          (["--bus", "kafka://x"], "no transport is installed")]:
        result = subprocess.run([*RELAYBUS, "firehose", "--http", "127.0.0.1:0", *args],
                                capture_output=True, text=True, timeout=WAIT)
        assert result.returncode in (1, 2) and message in result.stderr, (args, result.stderr)


async def test_demo_console_runs_the_services_with_the_gateway_attached() -> None:
    demo = GatewayProcess([], program=[*RELAYBUS, "demo", "--console"]).start()
    try:
        assert demo.stdout is not None
        assert await asyncio.to_thread(demo.stdout.wait_for, "services are running")
        sse = await SSEClient.open(demo.port,
                                   "/events?topic=nova/%2B/compute/instance/create/end")
        got = await sse.events(3)  # round-robin: one from each compute host
        await sse.close()
    finally:
        code = demo.stop(signal.SIGINT)
    assert {e["source"] for e in got} == {"compute.host1", "compute.host2", "compute.host3"}
    assert all(e["busexchange"] == "nova" and e["data"]["host"] in e["source"] for e in got)
    assert code == 0, demo.output()


async def test_listen_gives_up_on_a_port_nobody_answers_and_says_so() -> None:
    from firehose_support import free_port

    process = await asyncio.create_subprocess_exec(
        *RELAYBUS, "listen", "--mqtt", f"mqtt://127.0.0.1:{free_port()}", "--count", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    async with asyncio.timeout(WAIT * 2):
        _, err = await process.communicate()
    assert process.returncode == 1
    lines = err.decode().splitlines()
    assert sum("reconnecting (attempt" in line for line in lines) == 4, lines
    assert "after 5 attempts" in lines[-1] and "giving up" in lines[-1]
    assert "Traceback" not in err.decode()
