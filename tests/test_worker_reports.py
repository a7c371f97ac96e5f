"""The worker's report cache (`streams.reports`): what /api/ports serves is always a fresh report.

Every figure compared is what the core's `PortMetrics.report()` gives for the same state at that moment.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

import orjson

from crossing_monitor.core.catalogue import load_catalogue
from producers.run import Run
from streams.reports import ReportCache
from streams.state import PartitionState

CATALOGUE = load_catalogue()


@cache
def day_of(port: str) -> tuple[bytes, ...]:
    return tuple(Run(CATALOGUE, [port], datetime.fromisoformat("2024-03-01T00:00:00+08:00"), 1).lines())


def fold(part: PartitionState, lines: tuple[bytes, ...]) -> None:
    """What `Processor.fold` does to a state, as far as the cache can tell: fold, move the offset."""
    for line in lines:
        part.monitor.process(line)
        part.next_offset += 1


def served(cache: ReportCache, part: PartitionState, slug: str) -> dict:
    return orjson.loads(orjson.dumps(cache.get(part, slug)))


def test_the_report_served_is_the_fresh_report_of_the_state_after_every_fold():
    lines = day_of("khorgos")
    part, cache = PartitionState.restore(0, CATALOGUE, None), ReportCache()
    for start in range(0, len(lines), 97):
        fold(part, lines[start : start + 97])
        assert served(cache, part, "khorgos") == part.monitor.ports["khorgos"].report()
    assert cache.built == len(range(0, len(lines), 97))


def test_a_report_is_built_once_while_the_state_does_not_move():
    part, cache = PartitionState.restore(0, CATALOGUE, None), ReportCache()
    fold(part, day_of("khorgos")[:500])
    first = cache.get(part, "khorgos")
    assert all(cache.get(part, "khorgos") is first for _ in range(5)) and cache.built == 1


def test_a_state_replaced_at_the_same_offset_is_reported_from_the_new_state():
    """A rebalance restores another state object, possibly with other contents at the same offset."""
    lines = day_of("khorgos")
    old, cache = PartitionState.restore(0, CATALOGUE, None), ReportCache()
    fold(old, lines[:800])
    assert served(cache, old, "khorgos") == old.monitor.ports["khorgos"].report()
    new = PartitionState.restore(0, CATALOGUE, None)
    fold(new, lines[:400])
    new.next_offset = old.next_offset
    assert served(cache, new, "khorgos") == new.monitor.ports["khorgos"].report()
    assert new.monitor.ports["khorgos"].report() != old.monitor.ports["khorgos"].report()


def test_ports_of_two_partitions_are_kept_apart():
    a, b, cache = PartitionState.restore(0, CATALOGUE, None), PartitionState.restore(1, CATALOGUE, None), ReportCache()
    fold(a, day_of("khorgos")[:300])
    fold(b, day_of("lektse")[:300])
    assert served(cache, a, "khorgos") == a.monitor.ports["khorgos"].report()
    assert served(cache, b, "lektse") == b.monitor.ports["lektse"].report()
