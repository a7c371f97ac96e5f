"""The worker's processor without Kafka: fold, skip, gaps, checkpoints, dead letters, rebalances, commits.

Its collaborators are fakes with a switch to fail; every expected figure is what the metric core
(`Monitor`, as `analyze` runs it) makes of the same lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from eventlog import crossing, event, lines

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.logs import native
from crossing_monitor.logs.native import NativeMonitor
from streams.processor import Batch, Processor
from streams.state import PartitionState

CATALOGUE = load_catalogue()


@pytest.fixture(autouse=True, params=["compiled", "python"])
def fold(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test on both folds: the compiled one (one call per batch) and the Python core (a loop)."""
    if request.param == "python":
        monkeypatch.setenv(native.ENV_VAR, "python")
    else:
        monkeypatch.delenv(native.ENV_VAR, raising=False)
        assert native.available(), "crossing_monitor_native is not installed: scripts/setup builds it"
    kind = NativeMonitor if request.param == "compiled" else Monitor
    assert type(native.new_monitor(CATALOGUE)) is kind
    return request.param


class SendFailed(Exception):
    """What a fake Kafka raises for a send it does not acknowledge."""


@dataclass
class Record:
    offset: int
    value: bytes | None


@dataclass
class FakeTopic:
    """Sends that resolve when awaited; `fail` makes them raise. `acked` is what Kafka holds."""

    fail: bool = False
    attempts: list[Any] = field(default_factory=list)
    acked: list[Any] = field(default_factory=list)

    def _send(self, item: Any):
        self.attempts.append(item)
        fail = self.fail

        async def ack() -> None:
            if fail:
                raise SendFailed(f"not written: {item!r}"[:80])
            self.acked.append(item)

        return ack()


class FakeStore(FakeTopic):
    """The checkpoint table: the local copy is written at once, the changelog when acknowledged."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[int, bytes] = {}

    def get(self, partition: int) -> bytes | None:
        return self.data.get(partition)

    def put(self, partition: int, blob: bytes):
        self.data[partition] = blob
        return self._send((partition, blob))


class FakeDeadLetters(FakeTopic):
    def send(self, key: bytes, value: bytes):
        return self._send((key, value))


@dataclass
class FakeSource:
    earliest_offset: int = 0
    seeks: list[dict[int, int]] = field(default_factory=list)
    commits: list[dict[int, int]] = field(default_factory=list)

    async def earliest(self, partition: int) -> int:
        return self.earliest_offset

    async def seek(self, offsets: Mapping[int, int]) -> None:
        self.seeks.append(dict(offsets))

    async def commit(self, offsets: Mapping[int, int]) -> bool:
        self.commits.append(dict(offsets))
        return True

    end: int | None = None
    reseeks: list[tuple[int, int]] = field(default_factory=list)

    async def end_offset(self, partition: int) -> int | None:
        return self.end

    async def reseek(self, partition: int, offset: int) -> None:
        self.reseeks.append((partition, offset))


@dataclass
class FakeGroup:
    generation: int = 1
    rebalancing: bool = False
    partitions: list[int] = field(default_factory=lambda: [0])

    def assigned(self) -> list[int]:
        return list(self.partitions)


@dataclass
class Rig:
    processor: Processor
    store: FakeStore
    letters: FakeDeadLetters
    source: FakeSource
    group: FakeGroup


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rig(store: FakeStore | None = None, group: FakeGroup | None = None, **policy: Any) -> Rig:
    """A processor on fakes; it checkpoints at every tick unless `policy` says otherwise."""
    store = store or FakeStore()
    letters, source, group = FakeDeadLetters(), FakeSource(), group or FakeGroup()
    policy = {"checkpoint_events": 1, "checkpoint_max_age": 0.0} | policy
    processor = Processor(CATALOGUE, "events", store, letters, source, group, send_timeout=1.0, **policy)
    return Rig(processor, store, letters, source, group)


def sample_lines() -> list[bytes]:
    """Two ports, a duplicate, and one line of each other reject reason."""
    evs: list[Any] = []
    for i in range(6):
        evs += crossing(
            f"k{i}",
            f"2024-03-0{1 + i % 2}T0{i}:00:00+08:00",
            f"2024-03-0{1 + i % 2}T0{i}:20:00+08:00",
            f"2024-03-0{1 + i % 2}T0{i}:50:00+08:00",
            cargo_tonnes=10 + i,
        )
        evs += crossing(f"l{i}", f"2024-03-01T1{i}:00:00+05:45", None, f"2024-03-01T1{i}:30:00+05:45", port="lektse")
    evs.insert(5, evs[2])  # a sensor sends twice
    evs += [
        b"{truncated",
        event("gate.exited", "not a time"),
        event("gate.exited", "2024-03-01T00:00:00Z", port="atlantis"),
    ]
    return lines(evs)


def records(raw: list[bytes], start: int = 0) -> list[Record]:
    return [Record(start + i, line) for i, line in enumerate(raw)]


def batch(recs: list[Record], generation: int = 1, partition: int = 0) -> Batch:
    return Batch(partition, recs, generation)


def analyze(raw: list[bytes]) -> dict[str, Any]:
    monitor = Monitor(CATALOGUE)
    monitor.process_all(raw)
    return monitor.report()


def report(processor: Processor) -> dict[str, Any]:
    """The processor's figures in the shape of `analyze`'s report."""
    ports = {slug: m.report() for slug in CATALOGUE if (m := processor.port_metrics(slug)) is not None}
    return {"ports": ports, "rejected": processor.rejected()}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ---- folding ---------------------------------------------------------------------------------


def test_fold_equals_analyze_and_rejections_become_dead_letters():
    raw = sample_lines()
    r = rig()

    async def go() -> None:
        for i in range(0, len(raw), 7):
            assert await r.processor.handle(batch(records(raw[i : i + 7], i)))
        await r.processor.tick()

    run(go())
    assert report(r.processor) == analyze(raw)
    part = r.processor.partitions[0]
    assert part.next_offset == len(raw) and part.durable_offset == len(raw)
    letters = [orjson.loads(v) for _, v in r.letters.acked]
    # a duplicate changes nothing and is no dead letter; the three other rejects are
    assert sorted(x["reason"] for x in letters) == ["invalid", "malformed", "unknown_port"]
    for (key, _), letter in zip(r.letters.acked, letters, strict=True):
        assert raw[letter["offset"]].decode() == letter["payload"]
        assert key == f"events/0/{letter['offset']}".encode()
    assert r.source.commits == [{0: len(raw)}]


def test_records_already_in_a_restored_state_are_skipped():
    raw = sample_lines()
    first = rig()
    run(first.processor.handle(batch(records(raw[:20]))))
    run(first.processor.tick())
    again = rig(store=first.store)  # a new owner, from the checkpoint at offset 20
    # the committed offset lagged the checkpoint: the consumer starts at 12 and redelivers 12..19
    run(again.processor.handle(batch(records(raw[12:], 12))))
    assert again.processor.events_skipped == 8
    assert again.processor.events_processed == len(raw) - 20
    assert report(again.processor) == analyze(raw)


def test_a_gap_in_offsets_is_counted_and_the_fold_goes_on():
    raw = sample_lines()
    recs = records(raw)
    kept = recs[:10] + recs[13:]  # offsets 10-12 never arrive (compaction, control records)
    r = rig()
    assert run(r.processor.handle(batch(kept)))
    assert r.processor.offsets_missing == 3
    assert r.processor.partitions[0].next_offset == len(raw)
    assert report(r.processor) == analyze(raw[:10] + raw[13:])


def test_a_batch_past_the_state_is_read_again_unless_retention_deleted_the_records():
    raw = sample_lines()
    r = rig()
    run(r.processor.handle(batch(records(raw[:5]))))
    # records 5..9 still exist: the batch starting at 10 is dropped and the partition sought back to 5
    assert not run(r.processor.handle(batch(records(raw[10:], 10))))
    assert r.source.seeks == [{0: 5}] and r.processor.reads_again == 1
    assert r.processor.partitions[0].next_offset == 5
    # retention deleted everything before 10: the batch is folded, the missing offsets counted
    r.source.earliest_offset = 10
    assert run(r.processor.handle(batch(records(raw[10:], 10))))
    assert r.processor.offsets_missing == 5 and r.source.seeks == [{0: 5}]
    assert report(r.processor) == analyze(raw[:5] + raw[10:])


# ---- checkpoints -------------------------------------------------------------------------------


def test_a_failed_checkpoint_commits_nothing_and_loses_no_dead_letter():
    raw = sample_lines()
    r = rig()
    run(r.processor.handle(batch(records(raw[:-3]))))  # every line but the three rejects
    run(r.processor.tick())
    assert r.source.commits == [{0: len(raw) - 3}]
    r.store.fail = r.letters.fail = True
    run(r.processor.handle(batch(records(raw[-3:], len(raw) - 3))))
    run(r.processor.tick())
    part = r.processor.partitions[0]
    assert part.durable_offset == len(raw) - 3  # not advanced
    assert r.source.commits == [{0: len(raw) - 3}]  # nothing more committed
    assert r.letters.acked == [] and len(part.dead_letters) == 3
    # Kafka is back: the next checkpoint sends the same dead letters, though nothing new came in
    r.store.fail = r.letters.fail = False
    run(r.processor.tick())
    assert sorted(orjson.loads(v)["offset"] for _, v in r.letters.acked) == [len(raw) - 3, len(raw) - 2, len(raw) - 1]
    assert part.dead_letters == {} and part.durable_offset == len(raw)
    assert r.source.commits[-1] == {0: len(raw)}
    # acknowledged letters are not sent again
    run(r.processor.handle(batch(records([raw[0]], len(raw)))))  # a duplicate: no letter
    run(r.processor.tick())
    assert len(r.letters.attempts) == 6 and len(r.letters.acked) == 3


def test_no_snapshot_reaches_kafka_while_a_dead_letter_below_its_offset_does_not():
    """Dead letters and snapshots go to different topics: were the snapshot in Kafka and its letter
    not, the next owner would skip the record and the letter would be lost for good."""
    raw = sample_lines()
    r = rig()
    r.letters.fail = True
    run(r.processor.handle(batch(records(raw))))
    run(r.processor.tick())
    assert r.store.attempts == [] and r.store.acked == []  # the snapshot waits for its letters
    assert r.source.commits == [] and len(r.processor.partitions[0].dead_letters) == 3
    r.letters.fail = False
    run(r.processor.tick())
    assert len(r.letters.acked) == 3 and len(r.store.acked) == 1
    assert r.source.commits[-1] == {0: len(raw)}


def test_only_the_snapshot_failing_keeps_the_acknowledged_letters_acknowledged():
    raw = sample_lines()
    r = rig()
    r.store.fail = True
    run(r.processor.handle(batch(records(raw))))
    run(r.processor.tick())
    assert len(r.letters.acked) == 3 and r.processor.partitions[0].dead_letters == {}
    assert r.source.commits == []
    r.store.fail = False
    run(r.processor.tick())
    assert len(r.letters.attempts) == 3  # the letters were not sent twice
    assert r.source.commits == [{0: len(raw)}]


def test_only_durable_offsets_are_committed():
    raw = sample_lines()
    r = rig()
    run(r.processor.handle(batch(records(raw[:10]))))
    part = r.processor.partitions[0]
    assert r.processor.uncommitted() == {}  # folded, not checkpointed: nothing to commit
    run(r.processor.tick())
    assert r.source.commits == [{0: 10}] and part.committed_offset == 10
    run(r.processor.tick())  # nothing new: no second commit
    assert r.source.commits == [{0: 10}]
    r.store.fail = True
    run(r.processor.handle(batch(records(raw[10:20], 10))))
    run(r.processor.tick())
    assert part.checkpoint_offset == 20 and part.durable_offset == 10 and r.processor.uncommitted() == {}
    assert r.source.commits == [{0: 10}]


def test_a_checkpoint_is_not_committed_when_a_rebalance_began_while_it_was_sent():
    raw = sample_lines()
    r = rig()
    run(r.processor.handle(batch(records(raw[:10]))))

    class Rebalancing(FakeStore):
        def put(self, partition: int, blob: bytes):
            r.group.generation += 1  # the group moved on while Kafka acknowledged the checkpoint
            return super().put(partition, blob)

    store = Rebalancing()
    r.processor.store = store
    run(r.processor.tick())
    assert len(store.acked) == 1 and r.source.commits == []


def test_a_restored_checkpoint_holds_every_field_and_the_right_offsets():
    raw = sample_lines()
    first = rig()
    run(first.processor.handle(batch(records(raw[:30]))))
    run(first.processor.tick())
    before = first.processor.partitions[0]
    again = rig(store=first.store)
    after = again.processor.state_for(0)
    assert set(after.monitor.ports) == set(before.monitor.ports) == {"khorgos", "lektse"}
    for slug, metrics in before.monitor.ports.items():
        restored = after.monitor.ports[slug]
        assert restored.to_state() == metrics.to_state()
        assert restored.report() == metrics.report()
    assert after.monitor.rejected == before.monitor.rejected
    assert (after.restored_offset, after.next_offset, after.checkpoint_offset, after.durable_offset) == (30,) * 4
    assert after.committed_offset == -1 and after.unsaved == 0 and after.dead_letters == {}
    # the restored state goes on exactly as the one that was never interrupted
    run(first.processor.handle(batch(records(raw[30:], 30))))
    run(again.processor.handle(batch(records(raw[30:], 30))))
    assert report(again.processor) == report(first.processor) == analyze(raw)
    # and the first tick commits the restored offset (unknown to the new owner)
    run(again.processor.tick())
    assert again.source.commits == [{0: len(raw)}]


def test_an_empty_partition_restores_to_the_start():
    part = rig().processor.state_for(3)
    assert isinstance(part, PartitionState)
    assert (part.restored_offset, part.next_offset, part.committed_offset) == (-1, 0, 0)


# ---- rebalances --------------------------------------------------------------------------------


def test_a_rebalance_in_the_middle():
    raw = sample_lines()
    r = rig(group=FakeGroup(partitions=[0, 1]))
    p = r.processor
    assert run(p.handle(batch(records(raw[:10]))))
    run(p.tick())
    assert run(p.handle(batch(records(raw[10:15], 10))))
    # the group rebalances: revoke checkpoints everything folded in, then forgets it
    r.group.rebalancing = True
    run(p.revoked())
    assert p.partitions == {}
    assert r.store.acked[-1][0] == 0 and PartitionState.restore(0, CATALOGUE, r.store.data[0]).next_offset == 15
    # a batch of the old generation still in the channel is dropped, and so is one of a partition
    # with no state while the rebalance lasts
    r.group.generation = 2
    assert not run(p.handle(batch(records(raw[15:20], 15), generation=1)))
    assert not run(p.handle(batch(records(raw[15:20], 15), generation=2)))
    assert p.partitions == {} and p.events_processed == 15
    # no commit while rebalancing
    run(p.tick())
    assert r.source.commits == [{0: 10}]
    # partition 0 moves away; partition 1 stays
    r.group.partitions = [1]
    p.assigned()
    r.group.rebalancing = False
    run(p.rebalance_complete())
    assert sorted(p.partitions) == [1] and r.source.seeks == [{1: 0}]
    # the new owner of partition 0 restores at 15 and reads on from the committed offset (10)
    owner = rig(store=r.store, group=FakeGroup(generation=2))
    run(owner.processor.rebalance_complete())
    assert owner.source.seeks == [{0: 15}]
    assert run(owner.processor.handle(batch(records(raw[10:], 10), generation=2)))
    assert owner.processor.events_skipped == 5
    assert report(owner.processor) == analyze(raw)


def test_a_revoked_state_folded_during_the_rebalance_is_forgotten_on_assignment():
    raw = sample_lines()
    r = rig()
    run(r.processor.handle(batch(records(raw[:10]))))
    r.group.rebalancing = True
    run(r.processor.revoked())
    r.processor.state_for(0)  # e.g. restored by a view during the rebalance
    r.processor.assigned()
    assert r.processor.partitions == {}


@pytest.mark.parametrize("generation", [0, 2])
def test_a_batch_of_another_generation_is_dropped(generation: int):
    r = rig()
    assert not run(r.processor.handle(batch(records(sample_lines()), generation=generation)))
    assert r.processor.partitions == {} and r.processor.events_processed == 0


# ---- checkpoints by size or age ------------------------------------------------------------------


def test_a_checkpoint_waits_for_n_events_or_the_max_age_and_a_quiet_partition_is_not_rewritten():
    raw = sample_lines()
    clock = Clock()
    r = rig(group=FakeGroup(partitions=[0, 1]), checkpoint_events=10, checkpoint_max_age=60.0, clock=clock)
    p = r.processor
    run(p.handle(batch(records(raw[:4]))))
    run(p.handle(batch(records(raw[4:8]), partition=1)))
    run(p.tick())
    assert r.store.attempts == [] and r.source.commits == []  # 4 events each, fresh: nothing due
    clock.now += 30
    run(p.handle(batch(records(raw[4:10], 4))))  # partition 0 reaches 10 unsaved events
    run(p.tick())
    assert [part for part, _ in r.store.attempts] == [0] and r.source.commits == [{0: 10}]
    assert p.checkpoint_age() == pytest.approx(30.0)  # partition 1's oldest unsaved event
    clock.now += 29.9
    run(p.tick())
    assert len(r.store.attempts) == 1
    clock.now += 0.2  # partition 1's oldest unsaved event is 60 s old
    run(p.tick())
    assert [part for part, _ in r.store.attempts] == [0, 1] and r.source.commits[-1] == {1: 4}
    assert p.checkpoint_age() == 0.0
    clock.now += 3600
    run(p.tick())  # nothing new anywhere: nothing written, nothing committed
    assert len(r.store.attempts) == 2 and len(r.source.commits) == 2
    # a revoke checkpoints whatever is unsaved, however little
    run(p.handle(batch(records(raw[10:11], 10))))
    r.group.rebalancing = True
    run(p.revoked())
    assert [part for part, _ in r.store.attempts] == [0, 1, 0]
    assert PartitionState.restore(0, CATALOGUE, r.store.data[0]).next_offset == 11


def test_a_dead_letter_does_not_wait_for_the_max_age():
    raw = sample_lines()
    r = rig(checkpoint_events=1000, checkpoint_max_age=60.0, clock=Clock())
    run(r.processor.handle(batch(records(raw))))
    run(r.processor.tick())
    assert len(r.letters.acked) == 3 and len(r.store.acked) == 1


def test_the_checkpoint_on_shutdown_gives_up_after_its_timeout():
    raw = sample_lines()

    class Unanswered(FakeStore):
        def put(self, partition: int, blob: bytes):
            self.data[partition] = blob
            return asyncio.Event().wait()  # a broker that is gone

    r = rig(store=Unanswered())
    run(r.processor.handle(batch(records(raw[:5]))))

    async def stop() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        done = await r.processor.checkpoint_on_shutdown(0.2)
        return done, loop.time() - start

    done, took = run(stop())
    assert not done and took < 0.9


# ---- gaps and stalls ---------------------------------------------------------------------------


def test_a_batch_past_the_state_is_a_gap_once_the_seek_back_brings_the_same_start():
    raw = sample_lines()
    r = rig()
    p = r.processor
    assert run(p.handle(batch(records(raw[:10]))))
    # offset 10 is a transaction's commit marker: the next batch starts at 11
    assert not run(p.handle(batch(records(raw[11:15], 11))))
    assert r.source.seeks == [{0: 10}]
    # a batch fetched before the seek back is dropped without another seek
    assert not run(p.handle(batch(records(raw[15:], 15))))
    assert r.source.seeks == [{0: 10}]
    # read again from 10, the partition starts at 11 once more: nothing is at 10, the fold goes on
    assert run(p.handle(batch(records(raw[11:15], 11))))
    assert run(p.handle(batch(records(raw[15:], 15))))
    assert r.source.seeks == [{0: 10}] and p.reads_again == 1
    assert p.partitions[0].next_offset == len(raw)
    assert report(p) == analyze(raw[:10] + raw[11:])


def test_a_partition_stuck_behind_its_end_is_sought_again_with_a_growing_wait():
    raw = sample_lines()
    clock = Clock()
    r = rig(stall_seconds=5.0, clock=clock)
    p = r.processor
    run(p.handle(batch(records(raw[:10]))))
    r.source.end = 20  # ten more records exist, none is handed on
    run(p.watch_stalls())
    clock.now += 4.9
    run(p.watch_stalls())
    assert r.source.reseeks == []
    clock.now += 0.2
    run(p.watch_stalls())
    assert r.source.reseeks == [(0, 10)] and p.reseeks == 1
    clock.now += 5.1
    run(p.watch_stalls())  # still stuck: the wait doubled
    assert r.source.reseeks == [(0, 10)]
    clock.now += 5.0
    run(p.watch_stalls())
    assert r.source.reseeks == [(0, 10), (0, 10)]
    # it moves: the watch starts over; a partition at its end is never sought
    run(p.handle(batch(records(raw[10:20], 10))))
    clock.now += 100
    run(p.watch_stalls())
    r.source.end = 20
    clock.now += 100
    run(p.watch_stalls())
    assert len(r.source.reseeks) == 2


def test_a_rebalance_that_lasts_too_long_is_reported_counting_from_when_the_broker_was_last_away():
    clock = Clock()
    r = rig(rebalance_seconds=180.0, clock=clock)
    p = r.processor
    assert p.rebalance_overdue() is None and p.rebalancing_for() is None
    r.group.rebalancing = True
    assert p.rebalance_overdue() is None  # the timer sees it begin
    clock.now += 179.5
    assert p.rebalance_overdue() is None and p.rebalancing_for() == 179.5
    clock.now += 0.5
    assert p.rebalance_overdue() == 180.0
    p.broker_away()  # the adapter found no broker: another 180 s from now
    clock.now += 179.0
    assert p.rebalance_overdue() is None and p.rebalancing_for() == 359.0
    clock.now += 1.0
    assert p.rebalance_overdue() == 360.0
    # over: the next rebalance is timed from its own start
    r.group.rebalancing = False
    assert p.rebalance_overdue() is None and p.rebalancing_for() is None
    r.group.rebalancing = True
    clock.now += 1000
    assert p.rebalance_overdue() is None
    clock.now += 179
    assert p.rebalance_overdue() is None
    clock.now += 1
    assert p.rebalance_overdue() == 180.0


def _five_generations_100_s_apart() -> tuple[Processor, Clock, FakeGroup]:
    """A rebalance going on while a peer crash-loops: a new generation every 100 s, never overdue."""
    clock = Clock()
    r = rig(rebalance_seconds=180.0, clock=clock)
    p = r.processor
    r.group.rebalancing = True
    assert p.rebalance_overdue() is None
    for _ in range(5):
        clock.now += 100
        r.group.generation += 1
        assert p.rebalance_overdue() is None
    return p, clock, r.group


def test_a_group_that_keeps_rebalancing_is_alive_each_new_generation_counts_again():
    p, clock, _ = _five_generations_100_s_apart()
    assert p.rebalancing_for() == 500
    clock.now += 180
    assert p.rebalance_overdue() == 680


def test_a_rebalance_that_new_generations_keep_fresh_is_still_overdue_after_three_times_the_limit():
    """A dead recovery stays dead while peers come and go: generations alone cannot keep it forever."""
    p, clock, group = _five_generations_100_s_apart()
    clock.now += 39
    assert p.rebalance_overdue() is None
    clock.now += 1
    group.generation += 1
    assert p.rebalance_overdue() == 540.0
    p.broker_away()  # Kafka away: both clocks start again
    clock.now += 179
    assert p.rebalance_overdue() is None


def test_a_rebalance_limit_of_zero_never_reports():
    clock = Clock()
    r = rig(rebalance_seconds=0.0, clock=clock)
    r.group.rebalancing = True
    assert r.processor.rebalance_overdue() is None
    clock.now += 10_000
    assert r.processor.rebalance_overdue() is None
    assert r.processor.rebalancing_for() == 10_000


# ---- versioned checkpoints -----------------------------------------------------------------------


def _previous_format(part: PartitionState) -> bytes:
    """A snapshot as the worker wrote it before checkpoints had a version."""
    import zlib

    doc = {
        "partition": part.partition,
        "offset": part.next_offset,
        "ports": {slug: m.to_state() for slug, m in part.monitor.ports.items()},
        "rejected": part.monitor.rejected,
    }
    return zlib.compress(orjson.dumps(doc), 1)


def test_a_checkpoint_of_the_previous_format_is_rebuilt_from_the_topic(caplog):
    raw = sample_lines()
    first = rig()
    run(first.processor.handle(batch(records(raw[:30]))))
    store = FakeStore()
    store.data[0] = _previous_format(first.processor.partitions[0])
    again = rig(store=store)
    with caplog.at_level("WARNING", logger="crossing_monitor.worker"):
        part = again.processor.state_for(0)
    assert (part.next_offset, part.restored_offset, part.monitor.ports) == (0, -1, {})
    assert [r.message for r in caplog.records if "rebuilding" in r.message] != []
    run(again.processor.rebalance_complete())
    assert again.source.seeks == [{0: 0}]  # read from the start of the partition
    assert run(again.processor.handle(batch(records(raw))))
    assert report(again.processor) == analyze(raw)
    run(again.processor.tick())  # the rebuilt state replaces the old checkpoint
    assert PartitionState.restore(0, CATALOGUE, store.data[0]).next_offset == len(raw)


def test_a_checkpoint_the_core_cannot_read_is_rebuilt_not_a_crash(monkeypatch):
    from crossing_monitor.core.metrics import PortMetrics

    raw = sample_lines()
    first = rig()
    run(first.processor.handle(batch(records(raw[:30]))))
    run(first.processor.tick())

    def unreadable(*args: Any) -> Any:
        raise KeyError("a field this core does not know")

    monkeypatch.setattr(PortMetrics, "from_state", staticmethod(unreadable))
    part = rig(store=first.store).processor.state_for(0)
    assert (part.next_offset, part.monitor.ports, part.committed_offset) == (0, {}, -1)


# ---- misrouted events, dead letters that fit, a fold that raises ---------------------------------


class FakeForwards(FakeTopic):
    def send(self, partition: int, key: bytes, value: bytes, headers: list[tuple[str, bytes]]):
        return self._send((partition, key, value, tuple(headers)))


@dataclass
class HeaderRecord:
    offset: int
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


HOMES = {"khorgos": 0, "lektse": 3}  # a stand-in for murmur2: where each port's events belong


def _port(line: bytes) -> str | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return obj.get("port") if isinstance(obj, dict) else None


def forwarding_rig() -> tuple[Rig, FakeForwards]:
    r = rig(group=FakeGroup(partitions=[0, 3]))
    forwards = FakeForwards()
    r.processor = Processor(
        CATALOGUE, "events", r.store, r.letters, r.source, r.group, send_timeout=1.0, forwards=forwards, home=HOMES.get
    )
    return r, forwards


def test_a_misrouted_event_is_forwarded_to_its_ports_partition_once_acknowledged_and_counted_there():
    raw = sample_lines()
    r, forwards = forwarding_rig()
    p = r.processor
    forwards.fail = True
    assert run(p.handle(batch(records(raw))))  # everything landed on partition 0, lektse's events too
    assert set(p.partitions[0].monitor.ports) == {"khorgos"}  # no second state of lektse on partition 0
    lektse = [line for line in raw if _port(line) == "lektse"]
    assert p.events_forwarded == len(lektse) > 0
    run(p.tick())  # the forwards fail: kept, nothing durable, nothing committed
    assert len(p.partitions[0].forwards) == len(lektse) and r.source.commits == []
    forwards.fail = False
    run(p.tick())
    assert p.partitions[0].forwards == {} and r.source.commits == [{0: len(raw)}]
    assert [f[2] for f in forwards.acked] == lektse  # in order, each once acknowledged
    assert {(f[0], f[1]) for f in forwards.acked} == {(3, b"lektse")}
    assert all(f[3][0][0] == "crossing-forwarded-from" for f in forwards.acked)
    run(p.tick())
    assert len(forwards.attempts) == 2 * len(lektse)  # acknowledged forwards are not sent again
    # the forwarded records arrive on partition 3: counted there, so the figures equal analyze
    landed = [HeaderRecord(i, value, headers) for i, (_, _, value, headers) in enumerate(forwards.acked)]
    assert run(p.handle(batch(landed, partition=3)))
    assert set(p.partitions[3].monitor.ports) == {"lektse"}
    assert report(p) == analyze(raw)


def test_a_forwarded_record_is_folded_where_it_lands_and_never_forwarded_again():
    r, forwards = forwarding_rig()
    line = lines([event("gate.exited", "2024-03-01T10:00:00+08:00", port="lektse")])[0]
    rec = HeaderRecord(0, line, (("crossing-forwarded-from", b"events/5/9"),))
    assert run(r.processor.handle(batch([rec], partition=0)))  # partition 0 is not lektse's: still folded
    assert set(r.processor.partitions[0].monitor.ports) == {"lektse"} and r.processor.events_forwarded == 0


def test_without_a_known_home_every_event_is_folded_where_it_landed():
    r, forwards = forwarding_rig()
    r.processor.home = lambda port: None  # the topic's partitions are not known yet
    raw = sample_lines()
    assert run(r.processor.handle(batch(records(raw))))
    assert r.processor.events_forwarded == 0 and report(r.processor) == analyze(raw)


def test_a_huge_control_byte_payload_makes_a_dead_letter_that_fits():
    from streams.deadletters import LIMIT

    raw = b"\x01" * 900_000  # each byte is escaped to six in JSON
    r = rig()
    assert run(r.processor.handle(batch(records([raw]))))
    run(r.processor.tick())
    [(key, value)] = r.letters.acked
    letter = orjson.loads(value)
    assert len(key) + len(value) <= LIMIT
    assert (letter["reason"], letter["payload_bytes"], letter["payload_truncated"]) == ("malformed", 900_000, True)
    assert r.processor.rejected()["malformed"] == 1


POISON = b"{truncated"  # a line each fold hands to the Python core (sample_lines has it)


def poisoned_rig(monkeypatch: pytest.MonkeyPatch, fold: str, error: BaseException) -> Rig:
    """A rig whose fold raises `error` on POISON, in the Python core's judge of either fold."""

    def raising(judge):
        def flaky(line: bytes | str, *rest):
            if line == POISON:
                raise error
            return judge(line, *rest)

        return flaky

    if fold == "compiled":  # the compiled fold's judge is made with the monitor
        monkeypatch.setattr(native, "_verdict_in", lambda catalogue, made=native._verdict_in: raising(made(catalogue)))
    r = rig()
    part = r.processor.state_for(0)
    if fold == "python":
        monkeypatch.setattr(part.monitor, "process_decoded", raising(part.monitor.process_decoded))
    return r


def test_a_record_whose_fold_raises_is_a_dead_letter_and_the_fold_goes_on(monkeypatch, fold):
    raw = sample_lines()
    at = raw.index(POISON)
    r = poisoned_rig(monkeypatch, fold, OverflowError("cannot convert float infinity to integer"))
    assert run(r.processor.handle(batch(records(raw))))
    run(r.processor.tick())
    letters = [orjson.loads(v) for _, v in r.letters.acked]
    [bad] = [x for x in letters if x["offset"] == at]
    assert bad["reason"] == "invalid" and "OverflowError" in bad["detail"]
    assert r.processor.fold_errors == 1
    expected = analyze(raw[:at] + raw[at + 1 :])
    expected["rejected"]["invalid"] += 1
    assert report(r.processor) == expected
    assert [x["offset"] for x in letters] == sorted(x["offset"] for x in letters)  # in the records' order


def test_an_interrupt_during_a_fold_is_not_taken_for_a_bad_record(monkeypatch, fold):
    r = poisoned_rig(monkeypatch, fold, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run(r.processor.handle(batch(records(sample_lines()))))
    assert r.processor.fold_errors == 0 and r.processor.partitions[0].dead_letters == {}


def test_the_exporter_reads_every_state_before_a_rebalance_drops_them():
    seen: list[list[int]] = []
    r = rig(group=FakeGroup(partitions=[0, 1]))
    r.processor.on_forget = lambda states: seen.append(sorted(s.partition for s in states))
    r.processor.state_for(0), r.processor.state_for(1)
    run(r.processor.revoked())
    assert seen == [[0, 1]] and r.processor.partitions == {}
