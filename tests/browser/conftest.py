"""A real headless Chromium (Debian's chromium + chromium-driver) for the web console tests.

Screenshots land in tests/browser/artifacts/ (git-ignored), one per test, named after it.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))

from firehose_support import (
    PUBLISH_TOKEN,
    GatewayProcess,
    need_program,
)
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1400,900"]


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium, with a fresh profile, driven through chromedriver."""
    chromium = need_program("chromium")
    chromedriver = need_program("chromedriver")
    profile = tempfile.mkdtemp(prefix="relaybus-chromium-")
    options = Options()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshot(browser: webdriver.Chrome, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """Save a screenshot under tests/browser/artifacts/<test>-<label>.png."""

    def save(label: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}-{label}.png"
        assert browser.save_screenshot(str(path)), f"could not save {path}"
        return path

    return save


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., GatewayProcess]]:
    """Start ``relaybus firehose`` processes (publish token set); stopped after the test."""
    started: list[GatewayProcess] = []

    def start(*args: str, bus: str = "memory://?control_exchange=nova", port: int = 0,
              program: list[str] | None = None) -> GatewayProcess:
        extra = [] if program else ["--bus", bus, "--publish-token", PUBLISH_TOKEN]
        gateway = GatewayProcess([*extra, *args], port=port)
        if program:
            gateway.program = program
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.stop()
