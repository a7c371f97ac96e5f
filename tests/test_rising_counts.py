"""Counters from per-partition figures never fall, whatever partitions a worker holds (SPEC §3)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from streams.exporter import RisingCounts


@dataclass(eq=False)
class State:
    """A partition's state as the worker has it: its figures, and those it was restored with."""

    restored: dict[str, int] = field(default_factory=dict)
    figures: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.figures = {**self.restored, **self.figures}


def counts() -> RisingCounts:
    return RisingCounts(lambda s: s.figures, lambda s: s.restored)


def test_a_fresh_worker_exports_what_its_states_counted():
    view = counts()
    assert view.update([]) == {}  # no partition yet: nothing to say
    a, b = State(), State()
    a.figures["malformed"] = 4  # folded before the first scrape: counted all the same
    assert view.update([a, b]) == {"malformed": 4}
    b.figures.update(malformed=2, invalid=1)
    assert view.update([a, b]) == {"malformed": 6, "invalid": 1}


def test_a_restored_history_is_not_this_process_count():
    view = counts()
    a = State(restored={"malformed": 40})
    a.figures["malformed"] += 2
    assert view.update([a]) == {"malformed": 2}


def test_states_dropped_by_a_rebalance_keep_what_they_added_even_since_the_last_update():
    view = counts()
    a, b = State(), State()
    view.update([a, b])
    a.figures["malformed"] = 3
    b.figures["malformed"] = 2  # folded, then the rebalance drops b before any scrape
    assert view.update([a]) == {"malformed": 5}
    b.figures["malformed"] = 9  # a dropped state is read once more, then forgotten
    assert view.update([a]) == {"malformed": 5}
    c = State(restored={"malformed": 100})  # another partition's history arrives: no jump
    assert view.update([a, c]) == {"malformed": 5}
    c.figures["malformed"] += 1
    assert view.update([a, c]) == {"malformed": 6}


@given(st.integers(0, 2**32), st.integers(1, 4), st.integers(1, 8))
def test_workers_through_rebalances_never_fall_and_together_count_each_rejection_once(seed, workers, partitions):
    rng = random.Random(seed)
    checkpoints = {p: {"malformed": rng.randrange(5), "invalid": rng.randrange(5)} for p in range(partitions)}

    def assign() -> list[dict[int, State]]:
        """Every partition to one worker, restored from its checkpoint (written when it was revoked)."""
        held: list[dict[int, State]] = [{} for _ in range(workers)]
        for p in range(partitions):
            held[rng.randrange(workers)][p] = State(restored=dict(checkpoints[p]))
        return held

    held = assign()
    views = [counts() for _ in range(workers)]
    exported: list[dict] = [{} for _ in range(workers)]

    def scrape(w: int) -> None:
        now = views[w].update(held[w].values())
        assert all(now.get(k, 0) >= v for k, v in exported[w].items()), "a counter fell"
        exported[w] = now

    for w in range(workers):
        scrape(w)

    made = 0
    for _ in range(200):
        step = rng.random()
        if step < 0.7:
            w = rng.randrange(workers)
            if held[w]:
                state = held[w][rng.choice(sorted(held[w]))]
                reason = rng.choice(["malformed", "invalid"])
                state.figures[reason] = state.figures.get(reason, 0) + 1
                made += 1
        elif step < 0.9:
            scrape(rng.randrange(workers))
        else:  # a rebalance, with no scrape before it: checkpoints on revoke, states restored anew
            for w in range(workers):
                for p, state in held[w].items():
                    checkpoints[p] = dict(state.figures)
            held = assign()
            for w in range(workers):  # each state is seen once while held (see RisingCounts)
                scrape(w)
    for w in range(workers):
        scrape(w)
    assert sum(sum(e.values()) for e in exported) == made
