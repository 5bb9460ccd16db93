"""Scenario 9: credentials and access.

Wrong passwords, a missing virtual host, and TLS with a certificate the client does not
trust (the scenario makes its own CAs with trustme) must each fail fast with one clear,
typed, non-retried error — and no secret may appear in any log line, whatever the level.
A TLS connection with the right CA is the positive control.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trustme
from figures import Figures
from instances import NatsInstance, RabbitInstance
from transports import unique

import relaybus

SECRET = "pw-" + unique("s3cret")
FAST = 5.0


class _AllLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _certificates(directory: Path) -> dict[str, str]:
    trusted, stranger = trustme.CA(), trustme.CA()
    server = trusted.issue_cert("127.0.0.1", "localhost")
    files = {"ca": directory / "ca.pem", "other_ca": directory / "other-ca.pem",
             "cert": directory / "server.pem", "key": directory / "server.key"}
    trusted.cert_pem.write_to_path(str(files["ca"]))
    stranger.cert_pem.write_to_path(str(files["other_ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    for path in files.values():
        shutil.chown(path, "rabbitmq", "rabbitmq")
    return {name: str(path) for name, path in files.items()}


async def _expect_refusal(figures: Figures, label: str, url: str,
                          kind: type[BaseException]) -> None:
    started = time.monotonic()
    try:
        bus = await relaybus.connect(url)
    except relaybus.MessagingError as exc:
        elapsed = time.monotonic() - started
        figures.error(exc)
        figures.check(f"{label}: {kind.__name__} in under {FAST:.0f} s",
                      isinstance(exc, kind) and elapsed < FAST)
        figures.notes.append(f"{label}: {type(exc).__name__} after {elapsed:.2f} s: "
                             f"{str(exc)[:120]}")
        return
    await bus.close()
    figures.check(f"{label}: refused", False)


async def _expect_success(figures: Figures, label: str, url: str) -> None:
    try:
        async with await relaybus.connect(url):
            figures.check(f"{label}: connects", True)
    except relaybus.MessagingError as exc:
        figures.check(f"{label}: connects ({exc})", False)


async def _rabbit(figures: Figures, shared_url: str, certs: dict[str, str]) -> None:
    host = shared_url.split("@", 1)[1].split("/", 1)[0]
    await _expect_refusal(figures, "wrong password", f"rabbit://guest:{SECRET}@{host}/",
                          relaybus.AuthenticationFailure)
    await _expect_refusal(figures, "missing vhost", f"rabbit://guest:guest@{host}/{unique('no')}",
                          relaybus.AuthenticationFailure)
    tls = RabbitInstance(
        f"listeners.ssl.default = 127.0.0.1:{{tls_port}}\n"
        f"ssl_options.cacertfile = {certs['ca']}\nssl_options.certfile = {certs['cert']}\n"
        f"ssl_options.keyfile = {certs['key']}\nssl_options.verify = verify_none\n"
        f"ssl_options.fail_if_no_peer_cert = false\n")
    try:
        base = f"rabbit://guest:guest@127.0.0.1:{tls.tls_port}/?ssl=1"
        await _expect_refusal(figures, "TLS, untrusted certificate",
                              f"{base}&ssl_ca_file={certs['other_ca']}",
                              relaybus.ConnectionFailure)
        await _expect_success(figures, "TLS, trusted CA", f"{base}&ssl_ca_file={certs['ca']}")
    finally:
        tls.stop()


async def _nats(figures: Figures, certs: dict[str, str]) -> None:
    locked = NatsInstance("--user", "relaybus", "--pass", "right-password")
    try:
        await _expect_refusal(figures, "wrong password",
                              f"nats://relaybus:{SECRET}@127.0.0.1:{locked.port}",
                              relaybus.AuthenticationFailure)
    finally:
        locked.stop()
    tls = NatsInstance("--tls", "--tlscert", certs["cert"], "--tlskey", certs["key"])
    try:
        base = f"nats://127.0.0.1:{tls.port}?tls=1"
        await _expect_refusal(figures, "TLS, untrusted certificate",
                              f"{base}&tls_ca_file={certs['other_ca']}",
                              relaybus.ConnectionFailure)
        await _expect_success(figures, "TLS, trusted CA", f"{base}&tls_ca_file={certs['ca']}")
    finally:
        tls.stop()


async def run(transport: str, url: str) -> Figures:
    figures = Figures("credentials and access", transport)
    logs = _AllLogs()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(logs)
    root.setLevel(logging.DEBUG)
    directory = Path(__import__("tempfile").mkdtemp(prefix="relaybus-certs-"))
    shutil.chown(directory, "rabbitmq", "rabbitmq")
    try:
        certs = _certificates(directory)
        steps: dict[str, Callable[[], Awaitable[Any]]] = {
            "rabbit": lambda: _rabbit(figures, url, certs),
            "nats": lambda: _nats(figures, certs)}
        await steps[transport]()
    finally:
        root.removeHandler(logs)
        root.setLevel(previous)
        shutil.rmtree(directory, ignore_errors=True)
    leaked = [line for line in logs.lines if SECRET in line]
    figures.check("no secret in any log line", not leaked)
    figures.notes.append(f"{len(logs.lines)} log lines at DEBUG checked for the password")
    figures.sent = figures.received = 0
    return figures
