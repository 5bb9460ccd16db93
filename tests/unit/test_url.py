"""Transport URL parsing."""

import pytest

from relaybus import InvalidTransportURL
from relaybus.url import TransportHost, parse_url


def test_several_hosts_vhost_and_query() -> None:
    url = parse_url("rabbit://u:p@h1:5672,u2:p%40ss@h2:5673/vhost?ssl=1&heartbeat=30")
    assert url.scheme == "rabbit"
    assert url.hosts == (TransportHost("h1", 5672, "u", "p"),
                         TransportHost("h2", 5673, "u2", "p@ss"))
    assert url.virtual_host == "vhost"
    assert url.query == {"ssl": "1", "heartbeat": "30"}


def test_memory_url_has_no_hosts() -> None:
    url = parse_url("memory://")
    assert url.scheme == "memory" and url.hosts == () and url.virtual_host is None


def test_named_memory_url() -> None:
    assert parse_url("memory://tests").hosts[0].hostname == "tests"


def test_ipv6_host() -> None:
    host = parse_url("rabbit://guest:guest@[::1]:5672/").hosts[0]
    assert host.hostname == "::1" and host.port == 5672


def test_host_without_credentials_or_port() -> None:
    assert parse_url("nats://localhost").hosts == (TransportHost("localhost"),)


def test_percent_encoded_vhost() -> None:
    assert parse_url("rabbit://h/%2Fprod").virtual_host == "/prod"


def test_passwords_never_show() -> None:
    url = parse_url("rabbit://user:s3cret@h1:5672/v")
    assert "s3cret" not in repr(url) and "s3cret" not in str(url)
    assert "s3cret" not in repr(url.hosts[0])
    assert "user:****@h1:5672" in str(url)


@pytest.mark.parametrize("text, reason", [
    ("localhost:5672", "expected 'scheme://"),
    ("1abc://h", "not a valid scheme"),
    ("rabbit://h:99999/", "port"),
    ("rabbit://h:abc/", "port"),
    ("rabbit://[::1/", "unclosed"),
    ("rabbit://u:p@:5672/", "no host name"),
    ("rabbit://h1,,h2/", "empty host"),
    ("rabbit://h /", "whitespace"),
    ("rabbit://h/?a=1&&", "malformed query"),
])
def test_malformed_urls_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(InvalidTransportURL, match=reason):
        parse_url(text)


def test_non_string_url() -> None:
    with pytest.raises(InvalidTransportURL, match="must be a string"):
        parse_url(5672)  # type: ignore[arg-type]
