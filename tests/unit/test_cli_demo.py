"""`relaybus demo` runs as a user would run it."""

import subprocess
import sys


def test_demo_runs_and_reports_every_step() -> None:
    result = subprocess.run([sys.executable, "-m", "relaybus", "demo"], capture_output=True,
                            text=True, timeout=60, env={"PATH": "", "COLUMNS": "160"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "host1: 3, host2: 3, host3: 3" in out
    assert "served by host2" in out
    assert "3 hosts updated" in out
    assert "InstanceNotFound: instance 100 is not on host1" in out
    assert "UnsupportedVersion" in out
    assert "pool metering: 10/10, pool audit: 10/10" in out
    assert "7 steps done" in out


def test_demo_rejects_a_bad_url() -> None:
    result = subprocess.run([sys.executable, "-m", "relaybus", "demo", "--url", "kafka://x"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "no transport is installed for scheme 'kafka'" in result.stderr
