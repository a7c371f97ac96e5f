"""Counters from per-partition figures never fall, whatever partitions a worker holds (SPEC §3)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from streams.exporter import RisingCounts


def test_a_worker_exports_what_it_counted_since_it_started():
    counts = RisingCounts()
    assert counts.update({}) == {}  # no partition yet: nothing to say
    assert counts.update({0: {"malformed": 0}, 1: {"malformed": 0, "invalid": 0}}) == {"malformed": 0, "invalid": 0}
    assert counts.update({0: {"malformed": 4}, 1: {"malformed": 2, "invalid": 1}}) == {"malformed": 6, "invalid": 1}
    restarted = RisingCounts()  # a new process: the history in the restored states is not its own
    assert restarted.update({0: {"malformed": 4}, 1: {"malformed": 2, "invalid": 1}}) == {"malformed": 0, "invalid": 0}


def test_partitions_leaving_do_not_make_it_fall_and_arriving_do_not_make_it_jump():
    counts = RisingCounts()
    counts.update({0: {"malformed": 0}, 1: {"malformed": 0}})
    assert counts.update({0: {"malformed": 3}, 1: {"malformed": 2}}) == {"malformed": 5}
    assert counts.update({0: {"malformed": 3}}) == {"malformed": 5}  # 1 went to another worker
    assert counts.update({0: {"malformed": 3}, 2: {"malformed": 100}}) == {"malformed": 5}  # 2's history is not ours
    assert counts.update({0: {"malformed": 3}, 2: {"malformed": 101}}) == {"malformed": 6}  # its rise is
    assert counts.update({0: {"malformed": 3}, 1: {"malformed": 9}}) == {"malformed": 6}  # 1 back, grown elsewhere


def test_what_a_partition_added_before_its_first_update_counts_from_the_figure_it_arrived_with():
    counts = RisingCounts()
    arrived = {0: {"malformed": 4}, 1: {"malformed": 0}}
    assert counts.update({0: {"malformed": 6}, 1: {"malformed": 3}}, arrived) == {"malformed": 5}
    assert counts.update({0: {"malformed": 7}, 1: {"malformed": 3}}, arrived) == {"malformed": 6}


def test_a_figure_restored_lower_is_a_new_start_not_a_fall():
    counts = RisingCounts()
    counts.update({0: {"invalid": 0}})
    counts.update({0: {"invalid": 10}})
    assert counts.update({0: {"invalid": 7}}) == {"invalid": 10}  # an older checkpoint restored
    assert counts.update({0: {"invalid": 8}}) == {"invalid": 11}


@given(st.integers(0, 2**32), st.integers(1, 4), st.integers(1, 8))
def test_workers_through_rebalances_never_fall_and_together_count_each_rejection_once(seed, workers, partitions):
    rng = random.Random(seed)
    figures = {p: {"malformed": rng.randrange(5), "invalid": rng.randrange(5)} for p in range(partitions)}
    owner = {p: rng.randrange(workers) for p in range(partitions)}
    views = [RisingCounts() for _ in range(workers)]
    exported: list[dict] = [{} for _ in range(workers)]

    def scrape(w: int) -> None:
        now = views[w].update({p: dict(figures[p]) for p in range(partitions) if owner[p] == w})
        assert all(now.get(k, 0) >= v for k, v in exported[w].items()), "a counter fell"
        exported[w] = now

    for w in range(workers):  # the history in the states before they started is no one's
        scrape(w)
    made = 0
    for _ in range(200):
        step = rng.random()
        if step < 0.7:
            figures[rng.randrange(partitions)][rng.choice(["malformed", "invalid"])] += 1
            made += 1
        elif step < 0.9:
            scrape(rng.randrange(workers))
        else:  # a rebalance: every worker updates before it forgets what it gives away
            for w in range(workers):
                scrape(w)
            owner = {p: rng.randrange(workers) for p in range(partitions)}
            for w in range(workers):
                scrape(w)
    for w in range(workers):
        scrape(w)
    assert sum(sum(e.values()) for e in exported) == made
