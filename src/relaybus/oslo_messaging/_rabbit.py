"""From oslo's ``[oslo_messaging_rabbit]`` options to relaybus's ``rabbit://`` options.

Each option is either applied (it has a relaybus twin, or the facade does its job, e.g.
``kombu_failover_strategy = shuffle`` shuffles the hosts), or accepted and ignored because
it has no meaning here (connection pools, kombu internals); an ignored option set to
something other than its default is logged once per process, so nobody believes it
works. The table is in docs/oslo-migration.md.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from relaybus.oslo_messaging._opts import RABBIT_GROUP, rabbit_opts
from relaybus.oslo_messaging.exceptions import ConfigurationError

LOG = logging.getLogger(__name__)

# oslo option -> relaybus rabbit option (same meaning)
APPLIED = {
    "amqp_durable_queues": "amqp_durable_queues",
    "amqp_auto_delete": "amqp_auto_delete",
    "ssl": "ssl",
    "ssl_ca_file": "ssl_ca_file",
    "ssl_cert_file": "ssl_cert_file",
    "ssl_key_file": "ssl_key_file",
    "ssl_enforce_hostname_verification": "ssl_enforce_hostname_verification",
    "rabbit_login_method": "login_method",
    "rabbit_retry_interval": "reconnect_delay",
    "rabbit_interval_max": "reconnect_delay_max",
    "rabbit_ha_queues": "rabbit_ha_queues",
    "rabbit_quorum_queue": "rabbit_quorum_queue",
    "rabbit_transient_quorum_queue": "rabbit_transient_quorum_queue",
    "rabbit_quorum_delivery_limit": "rabbit_quorum_delivery_limit",
    "rabbit_quorum_max_memory_length": "rabbit_quorum_max_memory_length",
    "rabbit_quorum_max_memory_bytes": "rabbit_quorum_max_memory_bytes",
    "rabbit_transient_queues_ttl": "rabbit_transient_queues_ttl",
    "rabbit_qos_prefetch_count": "rabbit_qos_prefetch_count",
    "heartbeat_timeout_threshold": "heartbeat",
}
# applied by the facade itself (not a relaybus option)
FACADE = ("kombu_failover_strategy", "direct_mandatory_flag")
# accepted, without effect
IGNORED = ("rpc_conn_pool_size", "conn_pool_min_size", "conn_pool_ttl", "ssl_version",
           "ssl_enforce_fips_mode", "kombu_reconnect_delay", "kombu_reconnect_splay",
           "kombu_compression", "kombu_missing_consumer_retry_timeout",
           "rabbit_retry_backoff", "heartbeat_rate", "enable_cancel_on_failover",
           "use_queue_manager", "hostname", "processname", "rabbit_stream_fanout")
_SUPPORTED_LOGINS = ("PLAIN", "AMQPLAIN")

_logged: set[str] = set()
_logged_lock = threading.Lock()


def _log_once(name: str, value: Any) -> None:
    with _logged_lock:
        if name in _logged:
            return
        _logged.add(name)
    LOG.warning("[%s] %s = %r is accepted but has no effect with relaybus "
                "(see docs/oslo-migration.md)", RABBIT_GROUP, name, value)


def rabbit_options(conf: Any) -> dict[str, Any]:
    """relaybus ``rabbit://`` options for the ``[oslo_messaging_rabbit]`` of ``conf``.

    Raises:
        ConfigurationError: a login method relaybus cannot do (EXTERNAL, RABBIT-CR-DEMO).
    """
    group = conf[RABBIT_GROUP]
    options: dict[str, Any] = {}
    for oslo_name, name in APPLIED.items():
        value = group[oslo_name]
        if name.startswith("ssl_") and name.endswith("_file"):
            value = value or None
        options[name] = value
    if options["login_method"] not in _SUPPORTED_LOGINS:
        raise ConfigurationError(
            f"[{RABBIT_GROUP}] rabbit_login_method = {options['login_method']} is not "
            f"supported by relaybus; use PLAIN or AMQPLAIN")
    if not options["ssl"]:
        # oslo ignores the TLS files without ssl; relaybus would refuse them
        for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"):
            options[name] = None
    options["reconnect_delay_max"] = max(options["reconnect_delay_max"],
                                         options["reconnect_delay"])
    # oslo keeps a topic's queues when its servers stop, so requests wait for a server
    options["keep_rpc_queues"] = True
    for opt in rabbit_opts:
        if opt.name in IGNORED and group[opt.name] != opt.default:
            _log_once(opt.name, group[opt.name])
    return options
