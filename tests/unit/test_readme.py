"""The README's example runs, and its commands are the ones CI uses."""

import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_api_example_runs() -> None:
    code = re.search(r"## A first service\n\n```python\n(.*?)```", README, re.S)
    assert code is not None
    result = subprocess.run([sys.executable, "-c", code.group(1)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "notification: compute.host1 compute.instance.create.end {'instance_id': 52}" \
        in result.stdout
    assert "call: {'instance_id': 52, 'host': 'host1'}" in result.stdout


def test_readme_has_the_two_commands() -> None:
    for marker, command in [("demo-command", "relaybus demo"), ("test-command", "pytest")]:
        match = re.search(rf"<!-- {marker} -->\n```sh\n(.*)\n```", README)
        assert match is not None and command in match.group(1)
