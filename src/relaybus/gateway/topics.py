"""Hierarchical firehose topics: building them from a notification, and MQTT-style filters.

Every event the gateway forwards gets one topic such as
``nova/compute.host1/compute/instance/create/end``: the MQTT topic it is published on, and
what WebSocket and SSE clients filter on, with MQTT's rules (``+`` one level, ``#`` the rest,
last; see https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901241).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_TEMPLATE = "{exchange}/{publisher_id}/{event_type_path}"
TEMPLATE_FIELDS = ("exchange", "bustopic", "publisher_id", "event_type", "event_type_path",
                   "priority")
MAX_TOPIC_BYTES = 65535
MAX_FILTER_BYTES = 1024
MAX_FILTERS = 32

_UNSAFE = re.compile(r"[+#\x00-\x1f\x7f]")


class BadFilter(ValueError):
    """A topic filter a client sent is not a valid MQTT-style filter."""


def _clean(value: str | None) -> str:
    """One template value made safe for a topic: no wildcards, no control characters."""
    if not value:
        return "unknown"
    return _UNSAFE.sub("_", value)


class TopicTemplate:
    """Renders the topic of an event from a ``str.format`` template.

    Fields: ``exchange``, ``bustopic``, ``publisher_id``, ``event_type``,
    ``event_type_path`` (the event type with dots as slashes) and ``priority``. Values are
    cleaned of ``+``, ``#`` and control characters (each becomes ``_``); a slash in a value
    (a gerrit project such as ``openstack/nova``) adds levels, as intended.

    Raises:
        ValueError: the template names an unknown field, or has wildcards of its own.
    """

    def __init__(self, template: str = DEFAULT_TEMPLATE) -> None:
        if not template or "+" in template or "#" in template:
            raise ValueError(f"topic template {template!r} must be non-empty, without + or #")
        fields = []
        for _, name, spec, conversion in string.Formatter().parse(template):
            if name is None:
                continue
            if name not in TEMPLATE_FIELDS or spec or conversion:
                raise ValueError(f"topic template {template!r}: unknown field {{{name}}}; "
                                 f"use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}")
            fields.append(name)
        if not fields:
            raise ValueError(f"topic template {template!r} uses no field")
        self.template = template

    def render(self, *, exchange: str, bustopic: str, publisher_id: str | None,
               event_type: str, priority: str) -> str:
        """The topic of one event (a leading ``$`` is escaped: those topics are the broker's)."""
        topic = self.template.format(
            exchange=_clean(exchange), bustopic=_clean(bustopic),
            publisher_id=_clean(publisher_id), event_type=_clean(event_type),
            event_type_path=_clean(event_type).replace(".", "/"), priority=_clean(priority))
        if topic.startswith("$"):
            topic = "_" + topic[1:]
        return topic


@dataclass(frozen=True, slots=True)
class TopicFilter:
    """One parsed MQTT-style filter."""

    text: str
    levels: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> TopicFilter:
        """Parse and check a filter.

        Raises:
            BadFilter: empty, too long, a NUL, or a wildcard not alone in its level, or
                ``#`` not last.
        """
        if not isinstance(text, str) or not text:
            raise BadFilter("a topic filter must be a non-empty string")
        if len(text.encode("utf-8")) > MAX_FILTER_BYTES:
            raise BadFilter(f"topic filter is longer than {MAX_FILTER_BYTES} bytes")
        if "\x00" in text:
            raise BadFilter("topic filter contains a NUL character")
        levels = tuple(text.split("/"))
        for index, level in enumerate(levels):
            if "#" in level and (level != "#" or index != len(levels) - 1):
                raise BadFilter(f"topic filter {text!r}: '#' must be a whole level, the last")
            if "+" in level and level != "+":
                raise BadFilter(f"topic filter {text!r}: '+' must be a whole level")
        return cls(text, levels)

    def matches(self, levels: Sequence[str]) -> bool:
        """Whether a topic (split into levels) matches this filter."""
        mine = self.levels
        for index, level in enumerate(mine):
            if level == "#":
                return True  # also matches the parent: 'a/#' matches 'a'
            if index >= len(levels):
                return False
            if level != "+" and level != levels[index]:
                return False
        return len(mine) == len(levels)

    def covers(self, other: TopicFilter) -> bool:
        """Whether every topic ``other`` matches, this filter matches too (``nova/#``
        covers ``nova/+/compute``, not ``#``)."""
        mine, theirs = self.levels, other.levels
        for index, level in enumerate(mine):
            if level == "#":
                return True
            if index >= len(theirs) or theirs[index] == "#":
                return False  # theirs matches a shorter topic, or any level here
            if level != "+" and level != theirs[index]:
                return False  # theirs is '+' or another name here
        return len(theirs) == len(mine)

    def overlaps(self, other: TopicFilter) -> bool:
        """Whether some topic matches both filters (``#`` and ``nova/#`` do; ``nova/#``
        and ``keystone/#`` do not)."""
        mine, theirs = self.levels, other.levels
        for index in range(max(len(mine), len(theirs))):
            a = mine[index] if index < len(mine) else None
            b = theirs[index] if index < len(theirs) else None
            if a == "#" or b == "#":
                return True  # '#' matches the parent too: the topic where the other ends
            if a is None or b is None:
                return False
            if a != "+" and b != "+" and a != b:
                return False
        return True


class FilterSet:
    """The filters of one client: a topic matches if any filter does; cached per topic."""

    def __init__(self, filters: Iterable[TopicFilter]) -> None:
        self.filters = tuple(filters)
        self.everything = any(f.levels == ("#",) for f in self.filters)
        self._cache: dict[str, bool] = {}

    @classmethod
    def parse(cls, texts: Sequence[str]) -> FilterSet:
        """Parse a client's filters (none means everything: ``#``).

        Raises:
            BadFilter: one of them is malformed, or there are more than MAX_FILTERS.
        """
        if len(texts) > MAX_FILTERS:
            raise BadFilter(f"at most {MAX_FILTERS} topic filters, got {len(texts)}")
        return cls(TopicFilter.parse(t) for t in (texts or ["#"]))

    @property
    def texts(self) -> list[str]:
        return [f.text for f in self.filters]

    def matches(self, topic: str, levels: Sequence[str]) -> bool:
        """Whether the event topic (and its levels) is wanted."""
        if self.everything:
            return True
        hit = self._cache.get(topic)
        if hit is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            hit = self._cache[topic] = any(f.matches(levels) for f in self.filters)
        return hit


class NarrowedFilterSet(FilterSet):
    """A client's filters within a scope: a topic is wanted when both match it.

    Used when a client's filter reaches beyond its token's scope (``#`` with a token scoped
    to ``nova/#``): it gets the part of what it asked for that the scope allows.
    """

    def __init__(self, filters: FilterSet, scope: FilterSet) -> None:
        super().__init__(filters.filters)
        self.scope = scope
        self.everything = False

    def matches(self, topic: str, levels: Sequence[str]) -> bool:
        return super().matches(topic, levels) and self.scope.matches(topic, levels)
