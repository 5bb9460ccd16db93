"""The rabbit:// URL, its options and the topology they produce (no broker needed)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

import relaybus
from relaybus.bus import make_driver
from relaybus.drivers.rabbit import RabbitDriver, RabbitOptions
from relaybus.drivers.rabbit.options import connect_params
from relaybus.drivers.rabbit.topology import Topology, rpc_route
from relaybus.url import parse_url


def test_the_entry_point_builds_the_rabbit_driver() -> None:
    driver = make_driver("rabbit://guest:guest@127.0.0.1:5672/")
    assert isinstance(driver, RabbitDriver)
    assert driver.control_exchange == "openstack"


def test_control_exchange_from_the_url_and_from_connect() -> None:
    assert make_driver("rabbit://h/?control_exchange=nova").control_exchange == "nova"
    assert make_driver("rabbit://h/", control_exchange="cinder").control_exchange == "cinder"


def test_query_options_are_parsed_and_typed() -> None:
    driver = make_driver("rabbit://h/?heartbeat=7&amqp_durable_queues=true"
                         "&rabbit_qos_prefetch_count=10&rpc_message_ttl=2.5"
                         "&publisher_confirms=off&rabbit_transient_queues_ttl=0")
    assert isinstance(driver, RabbitDriver)
    options = driver.rabbit_options
    assert (options.heartbeat, options.amqp_durable_queues, options.rabbit_qos_prefetch_count,
            options.rpc_message_ttl, options.publisher_confirms,
            options.rabbit_transient_queues_ttl) == (7, True, 10, 2.5, False, 0)


def test_oslo_option_names_are_accepted() -> None:
    driver = make_driver("rabbit://h/", heartbeat_timeout_threshold=15, rabbit_quorum_queue=True)
    assert isinstance(driver, RabbitDriver)
    assert driver.rabbit_options.heartbeat == 15
    assert driver.rabbit_options.rabbit_quorum_queue is True


@pytest.mark.parametrize("query", ["nonsense=1", "heartbeat=soon", "amqp_durable_queues=maybe",
                                   "heartbeat=-1", "send_timeout=0", "rpc_message_ttl=-2",
                                   "ssl_ca_file=/nonexistent/ca.pem&ssl=1",
                                   "ssl_cert_file=/etc/hostname", "login_method=CRAM-MD5"])
def test_bad_options_are_refused(query: str) -> None:
    with pytest.raises(relaybus.InvalidTransportURL):
        make_driver(f"rabbit://h/?{query}")


def test_an_amqplain_login_refuses_credentials_it_cannot_carry() -> None:
    with pytest.raises(relaybus.InvalidTransportURL, match="under 128 bytes"):
        make_driver(f"rabbit://guest:{'x' * 128}@h/", rabbit_login_method="AMQPLAIN")
    assert make_driver(f"rabbit://guest:{'x' * 127}@h/?login_method=AMQPLAIN")


def test_unknown_option_names_the_known_ones() -> None:
    with pytest.raises(relaybus.InvalidTransportURL, match="rabbit_qos_prefetch_count"):
        make_driver("rabbit://h/", prefetch_size=3)


def test_hosts_in_failover_order_with_borrowed_credentials() -> None:
    url = parse_url("rabbit://alice:s%40cret@a:5673,b,carol:pw@c/nova")
    params = connect_params(url, RabbitOptions(), "test")
    assert [(p.host, p.port, p.username, p.password, p.virtual_host) for p in params] == [
        ("a", 5673, "alice", "s@cret", "nova"), ("b", 5672, "alice", "s@cret", "nova"),
        ("c", 5672, "carol", "pw", "nova")]


def test_defaults_are_localhost_guest_and_the_root_vhost() -> None:
    (params,) = connect_params(parse_url("rabbit://"), RabbitOptions(), "test")
    assert (params.host, params.port, params.username, params.virtual_host) == \
        ("localhost", 5672, "guest", "/")
    assert "guest" not in repr(params).replace("username='guest'", "")  # no password shown


def test_ssl_uses_port_5671_and_oslo_verification_rules(tls_files: dict[str, Path]) -> None:
    (plain,) = connect_params(parse_url("rabbit://h/"), RabbitOptions.parse("u", {"ssl": "1"}),
                              "t")
    assert plain.port == 5671 and plain.ssl_context is not None
    assert plain.ssl_context.verify_mode == ssl.CERT_NONE  # like oslo: no CA, no check
    ca = str(tls_files["ca"])
    context = RabbitOptions.parse("u", {"ssl": "1", "ssl_ca_file": ca}).ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is False
    strict = RabbitOptions.parse("u", {"ssl": "1", "ssl_ca_file": ca,
                                       "ssl_enforce_hostname_verification": "1"}).ssl_context()
    assert strict is not None and strict.check_hostname is True


def test_ssl_files_without_ssl_are_refused(tls_files: dict[str, Path]) -> None:
    with pytest.raises(relaybus.InvalidTransportURL, match="ssl=1"):
        RabbitOptions.parse("u", {"ssl_ca_file": str(tls_files["ca"])})


def test_unreadable_tls_files_are_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(relaybus.InvalidTransportURL, match="TLS files"):
        make_driver(f"rabbit://h/?ssl=1&ssl_ca_file={bogus}")


def test_default_topology_is_oslos() -> None:
    topology = Topology(RabbitOptions())
    exchange = topology.control_exchange("openstack")
    assert (exchange.type, exchange.durable, exchange.auto_delete) == ("topic", False, False)
    queue = topology.rpc_queue("openstack", "compute")
    assert (queue.name, queue.durable, queue.auto_delete, queue.arguments) == \
        ("compute", False, False, {})
    assert [(e.name, k) for e, k in queue.bindings] == [("openstack", "compute")]
    assert topology.server_queue("openstack", "compute", "h1").name == "compute.h1"
    fanout = topology.fanout_queue("compute")
    assert fanout.name.startswith("compute_fanout_") and len(fanout.name) == 15 + 32
    assert fanout.arguments == {"x-expires": 1800000}
    (fx, key), = fanout.bindings
    assert (fx.name, fx.type, fx.durable, fx.auto_delete, key) == \
        ("compute_fanout", "fanout", False, True, "compute")
    assert topology.reply_queue().arguments == {"x-expires": 1800000}
    assert topology.notification_queue("openstack", "notifications", "info").name == \
        "notifications.info"
    pool = topology.notification_queue("openstack", "notifications", "info", "metering")
    assert pool.name == "metering"
    assert [(e.name, k) for e, k in pool.bindings] == [("openstack", "notifications.info")]


def test_durable_quorum_and_ttl_options_change_the_topology() -> None:
    durable = Topology(RabbitOptions(amqp_durable_queues=True))
    assert durable.control_exchange("x").durable and durable.rpc_queue("x", "t").durable
    quorum = Topology(RabbitOptions(rabbit_quorum_queue=True))
    queue = quorum.notification_queue("x", "n", "info")
    assert queue.durable and queue.arguments == {"x-queue-type": "quorum"}
    no_ttl = Topology(RabbitOptions(rabbit_transient_queues_ttl=0))
    assert no_ttl.reply_queue().arguments == {}


def test_transient_quorum_queues_are_oslos() -> None:
    # oslo.messaging's declare_direct_consumer / declare_fanout_consumer / fanout_send
    # with rabbit_transient_quorum_queue=True
    topology = Topology(RabbitOptions(rabbit_transient_quorum_queue=True))
    reply = topology.reply_queue()
    assert (reply.durable, reply.auto_delete, reply.arguments) == \
        (True, False, {"x-queue-type": "quorum", "x-expires": 1800000})
    fanout = topology.fanout_queue("compute")
    assert (fanout.durable, fanout.arguments) == \
        (True, {"x-queue-type": "quorum", "x-expires": 1800000})
    (exchange, _), = fanout.bindings
    assert exchange == topology.fanout_exchange("compute")
    assert (exchange.durable, exchange.auto_delete) == (True, True)
    assert topology.rpc_queue("openstack", "compute").arguments == {}  # rabbit_quorum_queue's


def test_quorum_settings_and_ha_queues_add_oslos_arguments() -> None:
    quorum = Topology(RabbitOptions(rabbit_quorum_queue=True, rabbit_quorum_delivery_limit=3,
                                    rabbit_quorum_max_memory_bytes=1024))
    assert quorum.rpc_queue("x", "t").arguments == {
        "x-queue-type": "quorum", "x-delivery-limit": 3, "x-max-in-memory-bytes": 1024}
    assert quorum.reply_queue().arguments == {"x-expires": 1800000}  # not a quorum queue
    mirrored = Topology(RabbitOptions(rabbit_ha_queues=True))
    assert mirrored.notification_queue("x", "n", "info").arguments == {"x-ha-policy": "all"}
    assert mirrored.fanout_queue("t").arguments == {"x-ha-policy": "all", "x-expires": 1800000}
    with pytest.raises(relaybus.InvalidTransportURL, match="exclude each other"):
        make_driver("rabbit://h/?rabbit_ha_queues=1&rabbit_quorum_queue=1")
    with pytest.raises(relaybus.InvalidTransportURL, match="must not be negative"):
        make_driver("rabbit://h/?rabbit_quorum_delivery_limit=-1")


def test_rpc_routes() -> None:
    assert rpc_route("openstack", "compute", None, False) == ("openstack", "compute")
    assert rpc_route("nova", "compute", "h1", False) == ("nova", "compute.h1")
    assert rpc_route("openstack", "compute", None, True) == ("compute_fanout", "")
