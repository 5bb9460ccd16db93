"""oslo.messaging's configuration options, under oslo's names and groups.

Registered on the ``ConfigOpts`` a service passes in (never read at import time), so a
nova.conf written for oslo.messaging configures the drop-in unchanged.
:func:`list_opts` feeds ``oslo-config-generator`` (entry point ``oslo.messaging``'s shape:
a list of ``(group, options)``). What each ``[oslo_messaging_rabbit]`` option does here is
in :mod:`relaybus.oslo_messaging._rabbit`.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from oslo_config import cfg

__all__ = ["NOTIFICATIONS_GROUP", "RABBIT_GROUP", "list_opts", "register_opts"]

NOTIFICATIONS_GROUP = "oslo_messaging_notifications"
RABBIT_GROUP = "oslo_messaging_rabbit"
METRICS_GROUP = "oslo_messaging_metrics"
TRACING_GROUP = "oslo_messaging_tracing"

transport_opts = [
    cfg.StrOpt("transport_url", default="rabbit://", secret=True,
               help="Where the messaging backend is, as a URL: "
                    "driver://[user:pass@]host:port[,[user:pass@]host:port]/virtual_host"),
    cfg.StrOpt("control_exchange", default="openstack",
               help="Exchange that topics belong to unless a target names another."),
]
client_opts = [
    cfg.IntOpt("rpc_response_timeout", default=60,
               help="Seconds a call waits for its reply."),
]
pool_opts = [
    cfg.IntOpt("executor_thread_pool_size", default=64,
               deprecated_name="rpc_thread_pool_size",
               help="Threads that run a server's or listener's endpoint methods."),
]
dispatcher_opts = [
    cfg.BoolOpt("rpc_ping_enabled", default=False,
                help="Servers answer the oslo_rpc_server_ping method."),
]
notifier_opts = [
    cfg.MultiStrOpt("driver", default=[],
                    deprecated_name="notification_driver", deprecated_group="DEFAULT",
                    help="Where notifications go: messaging, messagingv2, routing, log, "
                         "test or noop."),
    cfg.StrOpt("transport_url", secret=True,
               deprecated_name="notification_transport_url", deprecated_group="DEFAULT",
               help="Transport URL for notifications; unset: the RPC transport's."),
    cfg.ListOpt("topics", default=["notifications"],
                deprecated_name="notification_topics", deprecated_group="DEFAULT",
                help="Topics notifications are sent to."),
    cfg.IntOpt("retry", default=-1,
               help="Retries of a notification whose sending failed on a lost "
                    "connection; -1 retries without end, 0 never."),
    cfg.StrOpt("routing_config", default="",
               help="YAML file of the routing driver's groups."),
]
rabbit_opts = [
    cfg.BoolOpt("amqp_durable_queues", default=False,
                help="Durable queues and control exchange."),
    cfg.BoolOpt("amqp_auto_delete", default=False,
                help="Auto-deleted queues and control exchange."),
    cfg.IntOpt("rpc_conn_pool_size", default=30, min=1,
               help="Not used: the drop-in shares one connection per transport."),
    cfg.IntOpt("conn_pool_min_size", default=2, help="Not used (no connection pool)."),
    cfg.IntOpt("conn_pool_ttl", default=1200, help="Not used (no connection pool)."),
    cfg.BoolOpt("ssl", default=False, help="Connect over TLS."),
    cfg.StrOpt("ssl_version", default="", help="Not used: TLS 1.2 or newer is negotiated."),
    cfg.StrOpt("ssl_key_file", default="", help="Client private key (with ssl_cert_file)."),
    cfg.StrOpt("ssl_cert_file", default="", help="Client certificate to present."),
    cfg.StrOpt("ssl_ca_file", default="", help="CA bundle that verifies the broker."),
    cfg.BoolOpt("ssl_enforce_hostname_verification", default=True,
                help="Check the broker's host name against its certificate "
                     "(with ssl_ca_file)."),
    cfg.BoolOpt("ssl_enforce_fips_mode", default=False,
                help="Not used: relies on the Python build's OpenSSL."),
    cfg.FloatOpt("kombu_reconnect_delay", default=1.0, min=0.0,
                 help="Not used (reconnects follow rabbit_retry_interval)."),
    cfg.FloatOpt("kombu_reconnect_splay", default=0.0, min=0.0,
                 help="Not used: reconnect pauses always have jitter."),
    cfg.StrOpt("kombu_compression", help="Not used: messages are sent uncompressed."),
    cfg.IntOpt("kombu_missing_consumer_retry_timeout", default=60,
               deprecated_name="kombu_reconnect_timeout",
               help="Not used: a reply whose caller is gone is dropped at once."),
    cfg.StrOpt("kombu_failover_strategy", default="round-robin",
               choices=("round-robin", "shuffle"),
               help="Order of the URL's hosts: as written, or shuffled once per "
                    "transport."),
    cfg.StrOpt("rabbit_login_method", default="AMQPLAIN",
               choices=("PLAIN", "AMQPLAIN", "EXTERNAL", "RABBIT-CR-DEMO"),
               help="SASL login mechanism (PLAIN and AMQPLAIN are supported)."),
    cfg.IntOpt("rabbit_retry_interval", default=1, min=1,
               help="Seconds before the first reconnect attempt."),
    cfg.IntOpt("rabbit_retry_backoff", default=2, min=0,
               help="Not used as such: the pause doubles (with jitter) up to "
                    "rabbit_interval_max."),
    cfg.IntOpt("rabbit_interval_max", default=30, min=1,
               help="Longest pause between reconnect attempts, in seconds."),
    cfg.BoolOpt("rabbit_ha_queues", default=False,
                help="Declare queues with x-ha-policy: all."),
    cfg.BoolOpt("rabbit_quorum_queue", default=False,
                help="Quorum queues for topic, server and notification queues."),
    cfg.BoolOpt("rabbit_transient_quorum_queue", default=False,
                help="Quorum queues for reply and fanout queues too."),
    cfg.IntOpt("rabbit_quorum_delivery_limit", default=0,
               help="x-delivery-limit of quorum queues (0: unset)."),
    cfg.IntOpt("rabbit_quorum_max_memory_length", default=0,
               help="x-max-in-memory-length of quorum queues (0: unset)."),
    cfg.IntOpt("rabbit_quorum_max_memory_bytes", default=0,
               help="x-max-in-memory-bytes of quorum queues (0: unset)."),
    cfg.IntOpt("rabbit_transient_queues_ttl", default=1800, min=0,
               help="Seconds an unused reply or fanout queue lives (x-expires)."),
    cfg.IntOpt("rabbit_qos_prefetch_count", default=0,
               help="Unacknowledged messages a consumer may hold (0: no limit)."),
    cfg.IntOpt("heartbeat_timeout_threshold", default=60,
               help="AMQP heartbeat timeout in seconds (0: no heartbeats)."),
    cfg.IntOpt("heartbeat_rate", default=3,
               help="Not used: the AMQP client checks heartbeats itself."),
    cfg.BoolOpt("direct_mandatory_flag", default=True,
                help="Replies are always sent mandatory: a reply nobody waits for is "
                     "dropped."),
    cfg.BoolOpt("enable_cancel_on_failover", default=False,
                help="Not used: consumers are re-declared on every reconnect."),
    cfg.BoolOpt("use_queue_manager", default=False,
                help="Not used: reply queue names are random."),
    cfg.StrOpt("hostname", help="Not used (see use_queue_manager)."),
    cfg.StrOpt("processname", help="Not used (see use_queue_manager)."),
    cfg.BoolOpt("rabbit_stream_fanout", default=False,
                help="Not used: fanout goes through fanout exchanges."),
]
metrics_opts = [
    cfg.BoolOpt("metrics_enabled", default=False,
                help="Not used: relaybus exports Prometheus metrics itself."),
    cfg.IntOpt("metrics_buffer_size", default=1000, help="Not used."),
    cfg.StrOpt("metrics_socket_file", default="/var/tmp/metrics_collector.sock",
               help="Not used."),
    cfg.StrOpt("metrics_process_name", default="", help="Not used."),
    cfg.IntOpt("metrics_thread_stop_timeout", default=10, help="Not used."),
]
tracing_opts = [
    cfg.BoolOpt("tracing_enabled", default=False,
                help="Not used: relaybus carries W3C trace context when OpenTelemetry "
                     "is installed."),
    cfg.StrOpt("tracing_service_name", default="openstack", help="Not used."),
    cfg.StrOpt("otel_exporter_otlp_endpoint", default="http://localhost:4318",
               help="Not used."),
    cfg.StrOpt("otlp_protocol", default="http/protobuf", help="Not used."),
    cfg.BoolOpt("insecure", default=False, help="Not used."),
]

_GROUPS: list[tuple[str | None, list[Any]]] = [
    (None, transport_opts + client_opts + pool_opts + dispatcher_opts),
    (NOTIFICATIONS_GROUP, notifier_opts),
    (RABBIT_GROUP, rabbit_opts),
    (METRICS_GROUP, metrics_opts),
    (TRACING_GROUP, tracing_opts),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register every option the drop-in reads on ``conf`` (idempotent).

    An option of the same name that something else (oslo.messaging itself, in a process
    that runs both) registered first is kept as it is.
    """
    for group, opts in _GROUPS:
        for opt in opts:
            # same name, other help text: the value is read the same way
            with contextlib.suppress(cfg.DuplicateOptError):
                conf.register_opt(opt, group=group)


def list_opts() -> list[tuple[str | None, list[Any]]]:
    """``[(group, [options])]`` for oslo-config-generator, as oslo.messaging lists them."""
    return [(group, copy.deepcopy(opts)) for group, opts in _GROUPS]
