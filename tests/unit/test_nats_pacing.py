"""relaybus.drivers.nats.pacing: when a server's subscription task lets nats-py write."""

import pytest

from relaybus.drivers.nats.pacing import WRITE_BATCH, WritePacer


def test_a_pause_is_due_every_batch_of_replies() -> None:
    pacer = WritePacer(3)
    due = []
    for _ in range(7):
        pacer.wrote()
        due.append(pacer.due())
    assert due == [False, False, True, False, False, True, False]


def test_nothing_written_means_no_pause() -> None:
    pacer = WritePacer()
    assert not any(pacer.due() for _ in range(3 * WRITE_BATCH))


def test_a_batch_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WritePacer(0)
