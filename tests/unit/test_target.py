"""Target: validation, immutability, derived copies, version rules."""

import pytest

from relaybus import InvalidTarget, Target
from relaybus.target import parse_version, version_is_compatible


def test_target_is_immutable_and_hashable() -> None:
    target = Target(topic="compute", server="host1")
    with pytest.raises(AttributeError):
        target.topic = "other"  # type: ignore[misc]
    assert {target: 1}[Target(topic="compute", server="host1")] == 1


def test_replace_derives_a_changed_copy() -> None:
    target = Target(topic="compute", version="1.0")
    changed = target.replace(server="host2", version="1.3")
    assert changed == Target(topic="compute", server="host2", version="1.3")
    assert target.server is None


@pytest.mark.parametrize("kwargs, message", [
    ({"server": "host1"}, "server needs a topic"),
    ({"fanout": True}, "fanout Target needs a topic"),
    ({"topic": "a.*"}, "wildcards"),
    ({"topic": "a.#"}, "wildcards"),
    ({"topic": "has space"}, "whitespace"),
    ({"topic": ""}, "must not be empty"),
    ({"topic": 42}, "must be a string"),
    ({"topic": "t", "version": "1"}, "MAJOR.MINOR"),
    ({"topic": "t", "version": "1.x"}, "MAJOR.MINOR"),
    ({"topic": "t", "version": 1.0}, "MAJOR.MINOR"),
    ({"topic": "t", "fanout": "yes"}, "bool"),
    ({"topic": "t", "server": "s", "fanout": True}, "both fanout"),
])
def test_bad_targets_are_rejected_with_a_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidTarget, match=message):
        Target(**kwargs)
    with pytest.raises(ValueError):
        Target(**kwargs)


def test_replace_validates_too() -> None:
    with pytest.raises(InvalidTarget):
        Target(topic="t").replace(version="one")


def test_str_shows_only_the_fields_set() -> None:
    assert str(Target(topic="compute", server="h1")) == "Target(topic='compute', server='h1')"


@pytest.mark.parametrize("served, requested, ok", [
    ("1.3", "1.0", True), ("1.3", "1.3", True), ("1.3", "1.4", False), ("1.3", "2.0", False),
    ("2.0", "1.9", False), ("1.3.2", "1.3.1", True), ("1.3.0", "1.3.1", False),
])
def test_version_compatibility(served: str, requested: str, ok: bool) -> None:
    assert version_is_compatible(served, requested) is ok


def test_parse_version() -> None:
    assert parse_version("1.3") == (1, 3, 0)
    assert parse_version("2.10.4") == (2, 10, 4)
