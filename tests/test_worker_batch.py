"""The worker's one call per batch into the compiled fold (`Fold.batch`, through `NativeMonitor.fold_batch`)
against its per-record loop over the Python core, on messy batches: duplicates, malformed and invalid
messages, blank and missing values, bytearrays, gaps in offsets, batches that replay offsets already
held, misrouted events and records that carry the forwarded header. Every outcome must be the same:
the state, the rejections, the dead letters and forwards (in order), the counters, the log lines."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import pytest
from messy import messy_log
from test_processor import HOMES, FakeDeadLetters, FakeForwards, FakeGroup, FakeSource, FakeStore

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.metrics import PortMetrics
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.logs import native
from crossing_monitor.logs.native import NativeMonitor
from streams.processor import FORWARDED, Batch, Processor

CATALOGUE = load_catalogue()
COUNTERS = (
    "events_processed",
    "events_skipped",
    "events_forwarded",
    "offsets_missing",
    "fold_errors",
    "batches_folded",
)


@dataclass
class Record:
    offset: int
    value: Any
    headers: tuple[tuple[str, bytes], ...] = ()


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    found, _ = messy_log(days=1.5, seed=5)
    return [line.rstrip(b"\n") for line in found]


def messy_records(lines: list[bytes], rng: random.Random) -> list[Record]:
    """The lines as one partition's records: gaps in offsets, odd values, some with headers."""
    odd: list[Any] = [None, b"", b"  ", b"[]", b"null", b'{"port": "lektse"}', b'{"port": 7}', b"\xed\xa0\x80"]
    values: list[Any] = list(lines)
    for value in [*odd * 3, bytearray(b"{"), bytearray(lines[7])]:
        values.insert(rng.randrange(len(values)), value)
    out, offset = [], 0
    for value in values:
        if rng.random() < 0.01:
            offset += rng.randint(1, 4)  # transaction markers, compaction
        draw = rng.random()
        headers: tuple[tuple[str, bytes], ...] = ()
        if draw < 0.05:
            headers = ((FORWARDED, b"events/5/9"),)
        elif draw < 0.08:
            headers = (("trace", b"x"), (FORWARDED, b"events/1/2"))
        elif draw < 0.1:
            headers = (("trace", b"x"),)
        out.append(Record(offset, value, headers))
        offset += 1
    return out


def batches(records: list[Record], rng: random.Random) -> list[list[Record]]:
    """Batches of random sizes, some of them starting again below where the last one ended (a redelivery)."""
    out, at = [], 0
    while at < len(records):
        start = max(0, at - rng.randint(1, 30)) if out and rng.random() < 0.25 else at
        end = min(len(records), start + rng.choice([1, 2, 7, 50, 120, 400, 1000]))
        out.append(records[start:end])
        at = max(at, end)
    return out


def processor(routed: bool) -> Processor:
    forwards = FakeForwards() if routed else None
    home = HOMES.get if routed else None
    group = FakeGroup(partitions=[0, 3])
    return Processor(
        CATALOGUE, "events", FakeStore(), FakeDeadLetters(), FakeSource(), group, forwards=forwards, home=home
    )


def fold_all(p: Processor, partition: int, batches: list[list[Record]], caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every batch folded into the partition's state; the worker's log lines."""
    caplog.clear()
    part = p.state_for(partition)
    with caplog.at_level(logging.INFO, logger="crossing_monitor.worker"):
        for recs in batches:
            p.fold(part, Batch(partition, recs if len(recs) % 2 else tuple(recs), 1))  # any sequence
    return [r.getMessage() for r in caplog.records]


def states(monitor: Monitor | NativeMonitor) -> dict[str, Any]:
    """Every port's whole state through the Python core (to_state: one order of the buckets)."""
    return {
        slug: PortMetrics.from_state(state, CATALOGUE[slug]).to_state() for slug, state in monitor.port_states().items()
    }


@pytest.mark.parametrize(("seed", "routed", "partition"), [(1, True, 0), (2, True, 3), (3, False, 0), (4, True, 5)])
def test_one_call_per_batch_equals_the_loop_over_records(lines, monkeypatch, caplog, seed, routed, partition):
    rng = random.Random(seed)
    todo = batches(messy_records(lines, rng), rng)
    assert native.available(), "crossing_monitor_native is not installed: scripts/setup builds it"
    compiled, python = processor(routed), processor(routed)
    said_compiled = fold_all(compiled, partition, todo, caplog)
    monkeypatch.setenv(native.ENV_VAR, "python")
    said_python = fold_all(python, partition, todo, caplog)
    a, b = compiled.partitions[partition], python.partitions[partition]
    assert type(a.monitor) is NativeMonitor and type(b.monitor) is Monitor

    assert said_compiled == said_python and any("no records at offsets" in line for line in said_python)
    assert {c: getattr(compiled, c) for c in COUNTERS} == {c: getattr(python, c) for c in COUNTERS}
    assert python.events_skipped > 0 and python.offsets_missing > 0
    assert (python.events_forwarded > 0) == routed
    assert a.next_offset == b.next_offset
    assert list(a.dead_letters.items()) == list(b.dead_letters.items()) and len(b.dead_letters) > 20
    assert list(a.forwards.items()) == list(b.forwards.items())
    assert a.monitor.rejected == b.monitor.rejected and b.monitor.rejected["duplicate"] > 0
    assert states(a.monitor) == states(b.monitor)
    assert {s: m.report() for s, m in a.monitor.ports.items()} == {s: m.report() for s, m in b.monitor.ports.items()}


def test_the_batch_call_hands_back_indexes_into_the_batch_and_counts_its_rejections():
    monitor = NativeMonitor(CATALOGUE)
    recs = [Record(0, b"{"), Record(1, b'{"port": "khorgos"}')]
    next_offset, skipped, gaps, forwards, rejected = monitor.fold_batch(recs, 0, {}, FORWARDED)
    assert (next_offset, skipped, gaps, forwards) == (2, 0, [], [])
    assert [(i, v.reason) for i, v in rejected] == [(0, "malformed"), (1, "invalid")]
    assert monitor.rejected["malformed"] == monitor.rejected["invalid"] == 1
