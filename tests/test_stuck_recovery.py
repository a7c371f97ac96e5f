"""A worker whose Faust recovery has ended for good mid-rebalance ends itself, and its partitions move on.

Faust ends its table recovery for good when one of its steps waits past broker_request_timeout; the
app then stays "rebalancing" and drops every batch, so its partitions would be served by no one. The
fault is injected into a real worker at the point where Faust meets it: one recovery step reports the
time-out (`sitecustomize` below, on that worker's PYTHONPATH only). Everything else is real: the
broker, both workers, the group's rebalances.
"""

from __future__ import annotations

import asyncio
import logging
import re
import textwrap
import uuid

import pytest
from workers import PARTITIONS, Differs, WorkerProcess, free_port, produce, wait_until

from crossing_monitor.kafka.admin import create_topics
from streams.watch import EXIT_STUCK, RebalanceWatch

# Faust's own path for a step that timed out: `Recovery._wait` raises ServiceStopped and the recovery
# loop ends. Here it happens at the first timed step of the worker's recovery number DEAD_RECOVERY.
TIMED_OUT_STEP = textwrap.dedent(
    """
    import asyncio
    import os
    from faust.tables import recovery

    _started = recovery.Recovery._set_recovery_started
    _wait = recovery.Recovery._wait
    state = {"recoveries": 0, "armed": False}

    def _set_recovery_started(self):
        state["recoveries"] += 1
        state["armed"] = state["recoveries"] == int(os.environ["DEAD_RECOVERY"])
        return _started(self)

    async def _timed_out(self, coro, timeout=None):
        if state["armed"] and timeout is not None:
            state["armed"] = False
            if asyncio.iscoroutine(coro):
                coro.close()
            print("TEST: a recovery step timed out", flush=True)
            raise recovery.ServiceStopped()
        return await _wait(self, coro, timeout)

    recovery.Recovery._set_recovery_started = _set_recovery_started
    recovery.Recovery._wait = _timed_out
    """
)


def _rejected(worker: WorkerProcess) -> float:
    found = re.search(r'^crossing_events_rejected_total\{reason="malformed"\} (\S+)$', worker.metrics(), re.M)
    return float(found.group(1)) if found else 0.0


def _held(worker: WorkerProcess, n: int) -> bool | Differs:
    """The worker's states hold `n` malformed lines (its exported counter counts only what it judged itself)."""
    got = worker.get("/api/ports?local=1")["rejected"]["malformed"]
    return got == n or Differs([f"its states hold {got}"])


def _holds_everything(worker: WorkerProcess) -> bool | Differs:
    health = worker.get("/healthz")
    done = health["assigned"] == list(range(PARTITIONS)) and not health["rebalancing"]
    return done or Differs([f"assigned {health['assigned']}, rebalancing {health['rebalancing']}"])


def _junk(tag: str, n: int) -> list[bytes]:
    return [f"not json {tag} {i}".encode() for i in range(n)]


class _App:
    should_stop = False


class _Processor:
    """The processor's side of the watch: overdue from the start; how often Kafka was found away."""

    def __init__(self, overdue: float | None = 200.0) -> None:
        self.overdue = overdue
        self.away = 0

    def rebalance_overdue(self) -> float | None:
        return self.overdue

    def broker_away(self) -> None:
        self.away += 1


def _watch(answers: list[str | None], processor: _Processor, app: _App | None = None):
    asked: list[str] = []
    ended: list[bool] = []

    async def probe(bootstrap: str, security: object) -> str | None:
        asked.append(bootstrap)
        return answers.pop(0)

    watch = RebalanceWatch(app or _App(), processor, "b:9092", None, probe=probe, end=lambda: ended.append(True))
    return watch, asked, ended


def test_an_overdue_rebalance_with_kafka_serving_ends_the_worker(caplog):
    watch, asked, ended = _watch([None], _Processor())
    with caplog.at_level(logging.ERROR, logger="crossing_monitor.worker"):
        asyncio.run(watch.look())
    assert ended == [True] and asked == ["b:9092"]
    assert "rebalance not over after 200 s though Kafka at b:9092 serves" in caplog.text
    assert f"exiting with {EXIT_STUCK}" in caplog.text


def test_with_kafka_away_the_watch_waits_looks_every_second_and_counts_again_from_its_return(caplog):
    processor = _Processor()
    watch, asked, ended = _watch(["connection refused", "connection refused", None], processor)
    with caplog.at_level(logging.INFO, logger="crossing_monitor.worker"):
        asyncio.run(watch.look())  # overdue, Kafka away: wait
        assert watch.away and processor.away == 1 and not ended
        assert "Kafka at b:9092 is not serving (connection refused): waiting for it" in caplog.text
        asyncio.run(watch.look())  # still away: the clock starts again
        assert processor.away == 2
        processor.overdue = None  # (the processor counts from the last broker_away)
        asyncio.run(watch.look())  # back: counted from now
        assert not watch.away and processor.away == 3 and "answers again" in caplog.text
        asyncio.run(watch.look())  # not overdue: no probe
    assert len(asked) == 3 and not ended


def test_a_worker_that_is_stopping_is_not_ended_by_the_watch():
    app = _App()
    watch, _, ended = _watch([None], _Processor(), app)
    app.should_stop = True
    asyncio.run(watch.look())
    assert not ended


def test_a_fault_of_the_watch_is_logged_and_the_watch_goes_on(caplog, monkeypatch):
    import streams.watch

    app = _App()
    looks = []

    class Faulty(_Processor):
        def rebalance_overdue(self) -> float | None:
            looks.append(1)
            if len(looks) >= 3:
                app.should_stop = True
            raise RuntimeError("a bug")

    monkeypatch.setattr(streams.watch, "WATCH_SECONDS", 0.0)
    watch, _, ended = _watch([], Faulty(), app)
    with caplog.at_level(logging.ERROR, logger="crossing_monitor.worker"):
        asyncio.run(watch.run())
    assert len(looks) == 3 and not ended
    assert caplog.text.count("the stuck-rebalance watch failed to look") == 3


def test_a_rebalance_that_is_not_overdue_costs_no_probe():
    watch, asked, ended = _watch([], _Processor(overdue=None))
    asyncio.run(watch.look())
    assert asked == [] and not ended


def test_kafka_that_accepts_connections_but_answers_nothing_is_not_serving():
    """A listener that accepts and stays silent (a broker still starting, a proxy in front of none)."""
    import socket

    from crossing_monitor.kafka.probe import not_serving

    with socket.create_server(("127.0.0.1", 0)) as server:
        bootstrap = f"127.0.0.1:{server.getsockname()[1]}"
        reason = asyncio.run(not_serving(bootstrap, None, timeout=1.0))
    assert reason is not None and "accepts connections but answers no metadata request" in reason
    assert asyncio.run(not_serving(f"127.0.0.1:{free_port()}", None)) == "connection refused"


def _doomed(kafka, topic: str, tmp_path, dead_recovery: int) -> WorkerProcess:
    """A worker whose recovery number `dead_recovery` times out (and a watch of 8 s)."""
    patch = tmp_path / "patch"
    patch.mkdir()
    (patch / "sitecustomize.py").write_text(TIMED_OUT_STEP)
    env = {"PYTHONPATH": str(patch), "DEAD_RECOVERY": str(dead_recovery), "CROSSING_MONITOR_REBALANCE_SECONDS": "8"}
    return WorkerProcess(kafka.bootstrap, topic, tmp_path, name="doomed", env=env)


def _ended_as_stuck(worker: WorkerProcess) -> None:
    assert worker.proc is not None
    worker.proc.wait(60)
    assert worker.proc.returncode == EXIT_STUCK, worker.log_tail()
    log = worker.log_path.read_text()
    assert "TEST: a recovery step timed out" in log
    assert "rebalance not over after" in log and f"exiting with {EXIT_STUCK}" in log


@pytest.mark.kafka
def test_a_worker_whose_first_recovery_died_exits_before_it_ever_served(kafka, tmp_path):
    """Faust starts its timers and web server only after the first recovery: the watch does not wait."""
    from crossing_monitor.kafka.probe import not_serving

    assert asyncio.run(not_serving(kafka.bootstrap)) is None  # a real broker serves
    topic = f"test.events.{uuid.uuid4().hex[:8]}"
    create_topics(kafka.bootstrap, {topic: PARTITIONS})
    produce(kafka.bootstrap, topic, _junk("before", 100))
    healthy = WorkerProcess(kafka.bootstrap, topic, tmp_path, name="healthy").start()
    doomed = _doomed(kafka, topic, tmp_path, dead_recovery=1)
    try:
        wait_until(lambda: _held(healthy, 100), 60, "the healthy worker's states to hold 100")
        doomed.start(wait=False)  # it joins: a rebalance gives it partitions, and its first recovery dies
        _ended_as_stuck(doomed)
        produce(kafka.bootstrap, topic, _junk("after", 50))
        wait_until(lambda: _holds_everything(healthy), 90, "the healthy worker to hold every partition")
        wait_until(lambda: _held(healthy, 150), 90, "the healthy worker's states to hold all 150")
    finally:
        healthy.stop()
        doomed.stop()


@pytest.mark.kafka
def test_a_worker_whose_recovery_died_exits_and_the_other_takes_its_partitions(kafka, tmp_path):
    topic = f"test.events.{uuid.uuid4().hex[:8]}"
    create_topics(kafka.bootstrap, {topic: PARTITIONS})
    doomed = _doomed(kafka, topic, tmp_path, dead_recovery=2).start()
    healthy = WorkerProcess(kafka.bootstrap, topic, tmp_path, name="healthy")
    try:
        produce(kafka.bootstrap, topic, _junk("before", 200))
        wait_until(lambda: _rejected(doomed) == 200, 60, "the first worker to count 200")
        healthy.start()  # a rebalance: the first worker's second recovery dies
        stuck = wait_until(
            lambda: (h := doomed.get("/healthz"))["rebalancing"] and (h["rebalancing_seconds"] or 0) >= 2 and h,
            60,
            "the first worker to report a rebalance going on",
        )
        assert stuck["assigned"], "the stuck worker holds no partitions: the group has not given it any"
        _ended_as_stuck(doomed)
        wait_until(lambda: _holds_everything(healthy), 90, "the healthy worker to hold every partition")
        produce(kafka.bootstrap, topic, _junk("after", 100))
        wait_until(lambda: _held(healthy, 300), 90, "the healthy worker's states to hold all 300")
    finally:
        healthy.stop()
        doomed.stop()
