"""NotificationFilter."""

import pytest

from relaybus import NotificationFilter


def test_every_given_regex_must_match() -> None:
    rule = NotificationFilter(publisher_id=r"^compute\.", event_type=r"instance\.",
                              context={"user": "^admin$"}, metadata={"message_id": "^a"},
                              payload={"state": "^active$"})
    good = {"ctxt": {"user": "admin"}, "publisher_id": "compute.h1",
                "event_type": "instance.create", "metadata": {"message_id": "abc"},
                "payload": {"state": "active"}}
    assert rule.match(**good)
    for key, value in [("publisher_id", "network.h1"), ("ctxt", {"user": "bob"}),
                       ("ctxt", {}), ("metadata", {"message_id": "zzz"}),
                       ("payload", {"state": 1}), ("payload", "not a dict")]:
        assert not rule.match(**{**good, key: value}), key


def test_empty_filter_matches_everything() -> None:
    assert NotificationFilter().match({}, None, "e", {}, None)


def test_bad_regexes_are_reported() -> None:
    with pytest.raises(ValueError, match="event_type"):
        NotificationFilter(event_type="(")
    with pytest.raises(TypeError):
        NotificationFilter(context="user")  # type: ignore[arg-type]
