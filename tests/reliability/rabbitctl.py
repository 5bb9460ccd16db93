"""A scenario's own RabbitMQ virtual host, through rabbitmqctl."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator

from relaybus.url import parse_url


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout


@contextlib.contextmanager
def own_vhost(url: str) -> Iterator[tuple[str, str]]:
    """A fresh vhost for the duration; yields (vhost, url pointing at it)."""
    vhost = f"relaybus-rel-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        host = parse_url(url).hosts[0]
        yield vhost, (f"rabbit://{host.username}:{host.password}@{host.hostname}:"
                      f"{host.port or 5672}/{vhost}")
    finally:
        rabbitmqctl("delete_vhost", vhost)


def queues(vhost: str, prefix: str = "") -> list[str]:
    names = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name").split()
    return [name for name in names if name.startswith(prefix)]
