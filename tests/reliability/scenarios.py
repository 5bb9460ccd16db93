"""Every scenario, and the transports it runs on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import sc_access
import sc_amqp_hostile
import sc_blocked_loop
import sc_broker_restart
import sc_browser_churn
import sc_client_killed
import sc_cluster
import sc_firehose_access
import sc_firehose_doors
import sc_firehose_log
import sc_firehose_mqtt
import sc_firehose_scopes
import sc_hostile_input
import sc_oversized
import sc_poison
import sc_poison_delay
import sc_reconnect_storm
import sc_reflection
import sc_server_killed
import sc_slow_consumer
import sc_version_skew
from figures import Figures

Scenario = Callable[[str, str], Awaitable[Figures]]

SCENARIOS: dict[str, tuple[Scenario, tuple[str, ...]]] = {
    "broker-restart": (sc_broker_restart.run, ("rabbit", "nats")),
    "credentials-and-access": (sc_access.run, ("rabbit", "nats")),
    "reconnect-storm": (sc_reconnect_storm.run, ("rabbit", "nats")),
    "slow-consumer": (sc_slow_consumer.run, ("rabbit", "nats")),
    "server-killed": (sc_server_killed.run, ("rabbit", "nats")),
    "client-killed": (sc_client_killed.run, ("rabbit", "nats")),
    "hostile-input": (sc_hostile_input.run, ("memory", "rabbit", "nats")),
    "poison-message": (sc_poison.run, ("memory", "rabbit", "nats")),
    "poison-and-delay-restart": (sc_poison_delay.run, ("rabbit", "nats")),
    "blocked-handler": (sc_blocked_loop.run, ("rabbit", "nats")),
    "version-skew": (sc_version_skew.run, ("memory", "rabbit", "nats")),
    "browser-churn": (sc_browser_churn.run, ("memory", "rabbit")),
    "firehose-access": (sc_firehose_access.run, ("memory",)),
    "firehose-mqtt-outage": (sc_firehose_mqtt.run, ("memory",)),
    "firehose-doors": (sc_firehose_doors.run, ("memory",)),
    "firehose-scope-escape": (sc_firehose_scopes.run, ("memory",)),
    "firehose-log-restart": (sc_firehose_log.run, ("nats", "rabbit")),
    "cluster-failover": (sc_cluster.run, ("nats", "rabbit")),
    "reply-reflection": (sc_reflection.run, ("memory", "rabbit", "nats")),
    "oversized-bodies": (sc_oversized.run, ("memory", "rabbit", "nats")),
    "frame-flood": (sc_amqp_hostile.run_flood, ("rabbit",)),
    "alarm-during-close": (sc_amqp_hostile.run_alarm_close, ("rabbit",)),
}
