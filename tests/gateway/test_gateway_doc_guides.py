"""The firehose guides' subscribers run as docs/guides/gerrit.md shows them.

The paho-over-WebSockets subscriber of the gerrit guide runs forever against a public host;
here it runs against a Mosquitto of this test's own (deploy/mosquitto's configuration, with
its WebSocket listener), its host and port the only change, while the gerrit example
publishes; it must print gerrit events.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from firehose_support import ROOT, GatewayProcess, Mosquitto

GUIDE = ROOT / "docs" / "guides" / "gerrit.md"
_BLOCK = re.compile(r"<!-- docs-test: elsewhere tests/gateway/test_gateway_doc_guides.py -->\n"
                    r"```python\n(.*?)```", re.S)


def test_the_websocket_subscriber_of_the_gerrit_guide(mosquitto: Mosquitto,
                                                      tmp_path: Path) -> None:
    (code,) = _BLOCK.findall(GUIDE.read_text())
    placed = 'HOST, PORT = "firehose.example.org", 9001'
    assert placed in code
    script = tmp_path / "subscriber.py"
    script.write_text(code.replace(placed, f'HOST, PORT = "127.0.0.1", {mosquitto.ws_port}'))
    publisher = GatewayProcess(["--mqtt", mosquitto.gateway_url, "--pause", "0.05"],
                               program=[sys.executable, "-m", "examples.gerrit.publisher"])
    subscriber = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        publisher.start()
        assert subscriber.stdout is not None
        line = subscriber.stdout.readline()  # the publisher sends until stopped
    finally:
        subscriber.kill()
        subscriber.communicate()
        publisher.stop()
    assert re.match(r"^gerrit/\S+/\S+ (patchset-created|comment-added|change-merged) "
                    r"https://review\.example\.org/\d+$", line), line
