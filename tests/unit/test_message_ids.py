"""Message ids come from a shared stock of OS randomness: unique across threads and
across a fork, in the formats the wire needs."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import uuid

from relaybus.message import new_message_id, new_unique_id


def test_ids_from_many_threads_never_repeat() -> None:
    made: list[list[str]] = [[] for _ in range(8)]

    def make(into: list[str]) -> None:
        into.extend(new_unique_id() for _ in range(5000))  # ~20 refills per thread

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [i for into in made for i in into]
    assert len(set(everything)) == len(everything) == 40_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in everything)


def test_message_ids_are_uuid4_text() -> None:
    for _ in range(1000):
        text = new_message_id()
        assert str(uuid.UUID(text)) == text and uuid.UUID(text).version == 4
        assert uuid.UUID(text).variant == uuid.RFC_4122


_FORK = """
import os
from relaybus.message import new_unique_id
new_unique_id()  # the stock is filled: the child inherits it
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, "".join(new_unique_id() for _ in range(4)).encode())
    os._exit(0)
os.close(write)
os.waitpid(pid, 0)
with os.fdopen(read) as pipe:
    child = pipe.read()
parent = "".join(new_unique_id() for _ in range(4))
assert len(child) == len(parent) == 128, (child, parent)
print("same" if child == parent else "different")
"""


def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    # in a fresh interpreter: a test run may have imported eventlet, which warns on fork
    done = subprocess.run([sys.executable, "-c", _FORK], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "different"
