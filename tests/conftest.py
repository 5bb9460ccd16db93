"""Fixtures shared by every test directory."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from relaybus.testing.brokers import brokers_required

NODE_PROJECT = Path(__file__).resolve().parent / "interop" / "node"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/interop/node/node_modules, installed from its lock file on first use."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        if brokers_required():
            pytest.fail("node and npm are needed (apt-get install nodejs npm)", pytrace=False)
        pytest.skip("node and npm are not installed")
    modules = NODE_PROJECT / "node_modules"
    wanted = json.loads((NODE_PROJECT / "package.json").read_text())["dependencies"]
    # Installed, and with every dependency (an older install lacks those added since).
    if not (modules / ".package-lock.json").exists() or not all(
            (modules / name / "package.json").exists() for name in wanted):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=NODE_PROJECT, check=True, timeout=300)
    return modules
