"""Fixtures of the firehose tests: unique names, gateway processes, a Mosquitto of their own."""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiormq
import pytest
from firehose_support import PUBLISH_TOKEN, GatewayProcess, Mosquitto, start_mosquitto

from relaybus.testing.brokers import require_broker


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses, derived from this test's name (for sources and types)."""
    base = re.sub(r"\W+", "_", request.node.name).strip("_")[-32:]
    return f"{base}_{uuid.uuid4().hex[:6]}"


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., GatewayProcess]]:
    """Start ``relaybus firehose`` processes (memory:// bus, exchange ``nova``, publish token).

    Each call takes extra command-line arguments; all are stopped after the test.
    """
    started: list[GatewayProcess] = []

    def start(*args: str, bus: str = "memory://?control_exchange=nova", port: int = 0,
              publish_token: str | None = PUBLISH_TOKEN) -> GatewayProcess:
        token_args = ["--publish-token", publish_token] if publish_token else []
        gateway = GatewayProcess(["--bus", bus, *token_args, *args], port=port)
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A Mosquitto of this test's own, configured from deploy/mosquitto.

    Its files live in a world-readable temporary directory, not pytest's private tmp_path:
    started as root, Mosquitto reads them as its own unprivileged user.
    """
    workdir = Path(tempfile.mkdtemp(prefix="relaybus-mosquitto-"))
    try:
        broker = start_mosquitto(workdir, password=uuid.uuid4().hex)
        yield broker
        broker.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def exchange(name: str) -> AsyncIterator[str]:
    """An exchange (and pool names) of this test's own; its pool queues and the gateway's
    replay log deleted afterwards."""
    require_broker("RabbitMQ", "127.0.0.1", 5672)
    exchange = f"fh_{uuid.uuid4().hex[:10]}"
    yield exchange
    connection = await aiormq.connect("amqp://guest:guest@127.0.0.1:5672/")
    channel = await connection.channel()
    for queue in (f"{exchange}-firehose", f"{exchange}-metering",
                  f"{exchange}-firehose.replay"):  # the gateway's replay log (a stream)
        await channel.queue_delete(queue)
    await connection.close()
