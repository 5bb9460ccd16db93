"""The nats driver's URL, options and naming, checked without a broker."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest

import relaybus
from relaybus import Target
from relaybus.bus import make_driver
from relaybus.drivers.nats import NatsDriver, NatsOptions
from relaybus.drivers.nats.naming import Naming, is_literal_subject, name_part, token
from relaybus.drivers.nats.options import server_list
from relaybus.url import parse_url


def driver(url: str, **options: object) -> NatsDriver:
    built = make_driver(url, **options)
    assert isinstance(built, NatsDriver)
    return built


def test_defaults() -> None:
    options = driver("nats://").nats_options
    assert options == NatsOptions()
    assert options.notifications == "jetstream" and options.confirm_casts
    assert server_list(parse_url("nats://"), options).servers == ["nats://localhost:4222"]


def test_query_strings_and_keyword_options_are_converted() -> None:
    options = driver("nats://h/?confirm_casts=off&stream_max_age=60&notifications=core"
                     "&fetch_batch=8", ack_wait=2.5, stream_storage="memory").nats_options
    assert options.confirm_casts is False
    assert options.stream_max_age == 60.0
    assert options.notifications == "core"
    assert options.fetch_batch == 8
    assert options.ack_wait == 2.5
    assert options.stream_storage == "memory"


@pytest.mark.parametrize("query, fragment", [
    ("bogus=1", "unknown nats option 'bogus'"),
    ("notifications=mqtt", "notifications must be one of jetstream, core"),
    ("deliver_policy=last", "deliver_policy must be one of all, new"),
    ("fetch_batch=0", "fetch_batch"),
    ("ack_wait=-1", "ack_wait must be a positive"),
    ("confirm_casts=maybe", "confirm_casts='maybe' is not a valid bool"),
    ("fetch_batch=1.5", "not a valid int"),
    ("subject_prefix=a.*", "not a subject prefix"),
    ("subject_prefix=a..b", "not a subject prefix"),
    ("reconnect_delay=5&reconnect_delay_max=1", "reconnect_delay_max must be >="),
    ("tls_ca_file=/nonexistent/ca.pem", "is not a readable file"),
    ("jetstream_domain=hub.eu", "jetstream_domain 'hub.eu' is not a domain name"),
    ("jetstream_domain=>", "is not a domain name"),
])
def test_bad_options_are_refused(query: str, fragment: str) -> None:
    with pytest.raises(relaybus.InvalidTransportURL, match=fragment.replace("*", r"\*")):
        driver(f"nats://h/?{query}")


def test_several_hosts_keep_their_order_and_share_credentials() -> None:
    url = parse_url("nats://u:p%40ss@a:4001,u:p%40ss@b,[::1]:4003/")
    servers = server_list(url, NatsOptions())
    assert servers.servers == ["nats://a:4001", "nats://b:4222", "nats://[::1]:4003"]
    assert (servers.user, servers.password, servers.token) == ("u", "p@ss", None)
    assert "p@ss" not in repr(servers)


def test_a_user_without_password_is_a_token() -> None:
    servers = server_list(parse_url("nats://s3cr3t@h/"), NatsOptions())
    assert (servers.user, servers.token) == (None, "s3cr3t")


def test_tls_changes_the_scheme_of_every_server() -> None:
    servers = server_list(parse_url("nats://a,b/"), NatsOptions(tls=True))
    assert servers.servers == ["tls://a:4222", "tls://b:4222"]


def test_different_credentials_per_host_are_refused() -> None:
    with pytest.raises(relaybus.InvalidTransportURL, match="same credentials"):
        driver("nats://u:p@a,v:q@b/")


def test_a_virtual_host_is_refused() -> None:
    with pytest.raises(relaybus.InvalidTransportURL, match="no virtual hosts"):
        driver("nats://h/vhost")


def test_errors_never_show_the_password() -> None:
    with pytest.raises(relaybus.InvalidTransportURL) as info:
        driver("nats://user:hunter2@h/?bogus=1")
    assert "hunter2" not in str(info.value)


def test_tls_context_verifies_by_default(tmp_path: Path) -> None:
    context = NatsOptions(tls=True).ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    lax = NatsOptions(tls=True, tls_verify=False).ssl_context()
    assert lax is not None and lax.verify_mode == ssl.CERT_NONE
    assert NatsOptions().ssl_context() is None
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(relaybus.InvalidTransportURL, match="cannot load the TLS files"):
        NatsOptions(tls_ca_file=str(bad)).ssl_context()


def test_names_become_single_subject_tokens() -> None:
    assert token("compute") == "compute"
    assert token("host1.example.com") == "host1%2Eexample%2Ecom"
    assert token("a%2Eb") == "a%252Eb"  # escaping is reversible: no two names collide
    assert token("a>b*c") == "a%3Eb%2Ac"
    naming = Naming("relaybus", "openstack")
    assert naming.rpc_subject(Target(topic="a.b")) != \
        naming.rpc_subject(Target(topic="a", server="b"))
    assert naming.rpc_subject(Target(topic="compute", server="h.1")) == \
        "relaybus.openstack.rpc.compute.h%2E1"
    assert naming.rpc_subject(Target(exchange="nova", topic="compute", fanout=True)) == \
        "relaybus.nova.fanout.compute"
    assert naming.notification_subject(Target(topic="notifications"), "info") == \
        "relaybus.openstack.notify.notifications.info"


def test_stream_and_consumer_names_are_unambiguous() -> None:
    naming = Naming("relaybus", "openstack")
    assert naming.stream(Target(topic="notifications")) == \
        ("relaybus_openstack_notifications", "relaybus.openstack.notify.notifications.*")
    one, _ = naming.stream(Target(exchange="a_b", topic="c"))
    two, _ = naming.stream(Target(exchange="a", topic="b_c"))
    assert one != two and "." not in one + two
    assert name_part("a.b") != name_part("a-b") and name_part("a-b") == "a-b"
    assert naming.consumer(None, "info") == "info"
    assert naming.consumer("metering", "info") == "metering_info"
    assert naming.consumer("info", "error") != naming.consumer(None, "info")
    assert naming.queue_group(None) != naming.queue_group("_default")


@pytest.mark.parametrize("subject, ok", [
    ("_INBOX.abc.def", True), ("a", True), ("a.*", False), ("a.>", False), ("", False),
    ("a..b", False), ("a b", False), ("a\r\nPUB x 1", False), (".a", False),
])
def test_only_literal_subjects_can_be_replied_to(subject: str, ok: bool) -> None:
    assert is_literal_subject(subject) is ok


DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "nats.md"


def test_the_protocol_page_lists_every_option_and_its_example_holds() -> None:
    text = DOC.read_text(encoding="utf-8")
    options_table = text[text.index("## 6. Options"):]
    missing = [f.name for f in dataclasses.fields(NatsOptions)
               if f"`{f.name}`" not in options_table]
    assert missing == []
    assert "(`rb_test` → `rb-test-2e2388be`)" in text
    assert name_part("rb_test") == "rb-test-2e2388be"


def test_a_server_without_a_name_listens_on_its_topic_and_fanout_only() -> None:
    naming = Naming("relaybus", "openstack")
    assert naming.server_subjects(Target(topic="t")) == [
        ("relaybus.openstack.rpc.t", "rpc"), ("relaybus.openstack.fanout.t", "")]
    assert [s for s, _ in naming.server_subjects(Target(topic="t", server="s"))] == [
        "relaybus.openstack.rpc.t", "relaybus.openstack.rpc.t.s", "relaybus.openstack.fanout.t"]
