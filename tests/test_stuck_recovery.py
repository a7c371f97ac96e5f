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
from streams.factory import _end_stuck_rebalance

# Faust's own path for a step that timed out: `Recovery._wait` raises ServiceStopped and the recovery
# loop ends. Here it happens at the first timed step of the worker's second recovery.
TIMED_OUT_STEP = textwrap.dedent(
    """
    import asyncio
    from faust.tables import recovery

    _started = recovery.Recovery._set_recovery_started
    _wait = recovery.Recovery._wait
    state = {"recoveries": 0, "armed": False}

    def _set_recovery_started(self):
        state["recoveries"] += 1
        state["armed"] = state["recoveries"] == 2
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


class _Counted:
    def __init__(self) -> None:
        self.away = 0

    def broker_away(self) -> None:
        self.away += 1


def test_a_stuck_rebalance_with_the_broker_away_waits_for_the_broker(caplog):
    """A new process could not join either: the worker says so, counts the time again and stays
    (this returns: no exit)."""
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    processor = _Counted()
    with caplog.at_level(logging.WARNING, logger="crossing_monitor.worker"):
        asyncio.run(_end_stuck_rebalance(processor, bootstrap, 200.0))  # type: ignore[arg-type]
    assert f"rebalance not over after 200 s; Kafka at {bootstrap} is not answering (connection refused)" in caplog.text
    assert processor.away == 1


@pytest.mark.kafka
def test_a_worker_whose_recovery_died_exits_and_the_other_takes_its_partitions(kafka, tmp_path):
    topic = f"test.events.{uuid.uuid4().hex[:8]}"
    create_topics(kafka.bootstrap, {topic: PARTITIONS})
    patch = tmp_path / "patch"
    patch.mkdir()
    (patch / "sitecustomize.py").write_text(TIMED_OUT_STEP)
    doomed = WorkerProcess(
        kafka.bootstrap,
        topic,
        tmp_path,
        name="doomed",
        env={"PYTHONPATH": str(patch), "CROSSING_MONITOR_REBALANCE_SECONDS": "8"},
    ).start()
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
        assert doomed.proc is not None
        doomed.proc.wait(60)
        assert doomed.proc.returncode == 75, doomed.log_tail()
        log = doomed.log_path.read_text()
        assert "TEST: a recovery step timed out" in log
        assert "rebalance not over after" in log and "exiting with 75" in log
        wait_until(lambda: _holds_everything(healthy), 90, "the healthy worker to hold every partition")
        produce(kafka.bootstrap, topic, _junk("after", 100))
        wait_until(lambda: _held(healthy, 300), 90, "the healthy worker's states to hold all 300")
    finally:
        healthy.stop()
        doomed.stop()
