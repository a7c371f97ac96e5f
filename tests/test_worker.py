"""The live worker on the real broker: exactly the figures of `analyze`, through crashes too."""

from __future__ import annotations

import re
import uuid

import orjson
import pytest
from messy import messy_log
from workers import (
    PARTITIONS,
    WorkerProcess,
    api_equals,
    checkpoint_offsets,
    committed_offsets,
    consume_all,
    produce,
    wait_until,
)

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.kafka.admin import create_topics

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def log():
    lines, bad = messy_log()
    monitor = Monitor(load_catalogue())
    monitor.process_all(lines)
    return lines, bad, monitor.report()


@pytest.fixture
def topic() -> str:
    return f"test.events.{uuid.uuid4().hex[:8]}"


def _samples(text: str, name: str) -> dict[tuple, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', line)))
            out[labels] = float(line.rsplit(" ", 1)[1])
    return out


def test_api_and_metrics_equal_analyze_and_bad_lines_reach_the_dead_letters(kafka, log, topic, tmp_path):
    lines, bad, expected = log
    worker = WorkerProcess(kafka.bootstrap, topic, tmp_path).start()
    try:
        produce(kafka.bootstrap, topic, lines)
        wait_until(api_equals(worker, expected), 120, "the worker to equal analyze")
        assert worker.get("/api/ports/khorgos") == expected["ports"]["khorgos"]
        unknown = worker.get_raw("/api/ports/moonbase")
        assert unknown.status_code == 404 and "moonbase" in unknown.json()["error"]

        text = worker.metrics()
        vehicles = _samples(text, "crossing_vehicles_total")
        for port, report in expected["ports"].items():
            got = sum(v for labels, v in vehicles.items() if ("port", port) in labels)
            assert got == report["crossings"], port
            assert (
                _samples(text, "crossing_throughput_vehicles_per_hour")[(("port", port),)]
                == report["throughput_per_hour"]
            )
            queue = _samples(text, "crossing_queue_vehicles")
            for direction, n in report["queue"].items():
                assert queue[(("direction", direction), ("port", port))] == n
            if report["peak_day"]:
                assert (
                    _samples(text, "crossing_peak_day_vehicles")[(("port", port),)] == report["peak_day"]["crossings"]
                )
            truck = report["last_hour_avg_inspection_seconds"].get("truck")
            if truck is not None:
                got_avg = _samples(text, "crossing_inspection_avg_seconds")[
                    (("port", port), ("vehicle_class", "truck"))
                ]
                assert got_avg == pytest.approx(truck, abs=1e-3)
        assert _samples(text, "crossing_worker_offsets_missing_total") == {(): 0.0}  # nothing lost
        assert _samples(text, "crossing_worker_events_processed_total")[()] == len(lines)
        rejected = _samples(text, "crossing_events_rejected_total")
        for reason, n in expected["rejected"].items():
            assert rejected[(("reason", reason),)] == n

        letters = wait_until(
            lambda: (m := consume_all(kafka.bootstrap, topic + ".dlq")) and len(m) >= sum(bad.values()) and m,
            60,
            "the dead letters",
        )
        docs = [orjson.loads(m.value) for m in letters]
        assert len(docs) == sum(bad.values())  # each bad line once; duplicates are counted, not forwarded
        assert {r: sum(1 for d in docs if d["reason"] == r) for r in bad} == bad
        assert len({d["payload"] for d in docs}) == len(docs)
        assert all(d["detail"] and d["topic"] == topic for d in docs)
    finally:
        worker.stop()


def test_kill_9_mid_stream_then_restart_gives_exactly_analyze(kafka, log, topic, tmp_path):
    lines, _, expected = log
    worker = WorkerProcess(kafka.bootstrap, topic, tmp_path).start()
    half = len(lines) // 2
    try:
        produce(kafka.bootstrap, topic, lines[:half])
        wait_until(lambda: worker.get("/healthz")["events_processed"] > half // 2, 60, "the worker to be busy")
        wait_until(lambda: committed_offsets(kafka.bootstrap, topic), 30, "a first commit")
        worker.kill()
        # the committed offset is never ahead of the state saved for it, or a restart would skip events
        committed, saved = committed_offsets(kafka.bootstrap, topic), checkpoint_offsets(kafka.bootstrap, topic)
        assert committed and all(offset <= saved.get(p, 0) for p, offset in committed.items()), (committed, saved)
        produce(kafka.bootstrap, topic, lines[half:])
        worker = WorkerProcess(kafka.bootstrap, topic, tmp_path, name="w2").start()
        wait_until(api_equals(worker, expected), 180, "the restarted worker to equal analyze")
        ends = {p: s["next_offset"] for p, s in worker.get("/healthz")["state"].items()}
        wait_until(
            lambda: all(committed_offsets(kafka.bootstrap, topic).get(int(p)) == o for p, o in ends.items() if o),
            30,
            "commits to reach the end of every partition",
        )
    finally:
        worker.stop()


def test_two_workers_share_the_ports_and_the_survivor_of_a_kill_stays_exact(kafka, log, topic, tmp_path):
    lines, _, expected = log
    first = WorkerProcess(kafka.bootstrap, topic, tmp_path, name="a").start()
    second = WorkerProcess(kafka.bootstrap, topic, tmp_path, name="b").start()
    try:
        third = len(lines) // 3
        produce(kafka.bootstrap, topic, lines[:third])

        def both_hold_partitions():
            return all(w.get("/healthz")["assigned"] for w in (first, second))

        wait_until(both_hold_partitions, 90, "both workers to own partitions")
        # either worker answers for every port, also those the other one owns
        partial = Monitor(load_catalogue())
        partial.process_all(lines[:third])
        wait_until(api_equals(first, partial.report()), 120, "worker a to answer for all ports")
        assert second.get("/api/ports") == partial.report()

        produce(kafka.bootstrap, topic, lines[third : 2 * third])
        first.kill()
        produce(kafka.bootstrap, topic, lines[2 * third :])
        wait_until(api_equals(second, expected), 180, "the survivor to equal analyze")
    finally:
        first.stop()
        second.stop()


def test_a_worker_joining_during_a_backlog_changes_nothing(kafka, topic, tmp_path):
    """A rebalance while the first worker is busy with a backlog (its batch channel full): both
    workers end exact, and neither crashes."""
    from datetime import datetime

    from producers.run import Run

    catalogue = load_catalogue()
    lines = list(Run(catalogue, list(catalogue), datetime.fromisoformat("2025-03-01T00:00:00+08:00"), 90).lines())
    monitor = Monitor(catalogue)
    monitor.process_all(lines)
    expected = monitor.report()
    create_topics(kafka.bootstrap, {topic: PARTITIONS, topic + ".dlq": 1})
    produce(kafka.bootstrap, topic, lines)  # the backlog, before any worker
    first = WorkerProcess(kafka.bootstrap, topic, tmp_path, name="a").start()
    second = None
    try:
        wait_until(lambda: first.get("/healthz")["events_processed"] > 0, 60, "worker a to start folding")
        second = WorkerProcess(kafka.bootstrap, topic, tmp_path, name="b").start()
        busy = first.get("/healthz")["events_processed"]
        assert busy < len(lines), "worker a was through the backlog before b joined: the test needs more events"
        for worker in (first, second):
            wait_until(api_equals(worker, expected), 180, f"worker {worker.log_path.stem} to equal analyze")
        assert all(w.get("/healthz")["assigned"] for w in (first, second))
        for worker in (first, second):
            assert worker.proc.poll() is None and "crash" not in worker.log_tail(10**7).lower()
    finally:
        first.stop()
        if second is not None:
            second.stop()
