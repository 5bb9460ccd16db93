"""JetStream domains: a bus attached to a leaf node keeps its notifications in the hub.

Two nats-servers of the test's own: a hub (JetStream domain ``hub``) and a leaf node
connected to it (its own JetStream, domain ``leaf``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_nats_support import (
    WAIT,
    PrivateNatsServer,
    free_port,
    raw_client,
    require_nats,
    wait_for_jetstream,
)

import relaybus
from relaybus import Target
from relaybus.testing.behaviour import Recorder

pytestmark = [pytest.mark.broker]


class Meter:
    def __init__(self) -> None:
        self.recorder = Recorder()

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict[str, Any]) -> None:
        self.recorder.add(payload["n"])


@pytest.fixture
async def hub_and_leaf(tmp_path: Path) -> AsyncIterator[tuple[PrivateNatsServer,
                                                             PrivateNatsServer]]:
    require_nats()
    leafnode_port = free_port()
    hub_conf, leaf_conf = tmp_path / "hub.conf", tmp_path / "leaf.conf"
    hub_conf.write_text(
        f'jetstream {{ store_dir: "{tmp_path / "hub"}", domain: hub }}\n'
        f'leafnodes {{ listen: "127.0.0.1:{leafnode_port}" }}\n')
    leaf_conf.write_text(
        f'jetstream {{ store_dir: "{tmp_path / "leaf"}", domain: leaf }}\n'
        f'leafnodes {{ remotes: [ {{ url: "nats-leaf://127.0.0.1:{leafnode_port}" }} ] }}\n')
    hub = await PrivateNatsServer(tmp_path / "hub", "-c", str(hub_conf),
                                  jetstream=False).start()
    leaf = await PrivateNatsServer(tmp_path / "leaf", "-c", str(leaf_conf),
                                   jetstream=False).start()
    try:
        await wait_for_jetstream(leaf.url, domain="hub")  # the leaf connection is up
        yield hub, leaf
    finally:
        await leaf.stop()
        await hub.stop()


async def stream_names(url: str) -> list[str]:
    async with raw_client(url) as client:
        return [info.config.name for info in await client.jsm().streams_info()]


async def test_notifications_sent_on_a_leaf_are_kept_in_the_hubs_domain(
        hub_and_leaf: tuple[PrivateNatsServer, PrivateNatsServer]) -> None:
    hub, leaf = hub_and_leaf
    target = Target(topic="edge_events")
    async with await relaybus.connect(leaf.url, jetstream_domain="hub") as edge:
        await edge.notifier("edge", topics=["edge_events"]).info({}, "e", {"n": 1})
        assert await stream_names(hub.url) != []
        assert await stream_names(leaf.url) == []

        # a listener on the hub reads the stream directly...
        central = Meter()
        async with await relaybus.connect(hub.url) as hub_bus:
            async with hub_bus.notification_listener([target], [central], pool="central"):
                assert await central.recorder.wait_for(1, WAIT) == [1]

        # ...and one on the leaf through the domain: pulls and acks cross the leaf link
        local = Meter()
        async with edge.notification_listener([target], [local], pool="local"):
            await edge.notifier("edge", topics=["edge_events"]).info({}, "e", {"n": 2})
            assert await local.recorder.wait_for(2, WAIT) == [1, 2]


async def test_a_domain_nobody_answers_for_fails_the_send_naming_it(
        hub_and_leaf: tuple[PrivateNatsServer, PrivateNatsServer]) -> None:
    _, leaf = hub_and_leaf
    async with await relaybus.connect(leaf.url, jetstream_domain="nowhere",
                                      send_timeout=1) as bus:
        with pytest.raises(relaybus.ConnectionFailure, match="'nowhere'"):
            await bus.notifier("edge", topics=["lost"]).info({}, "e", {"n": 1})
