"""Producers ride out a broker outage: kill -9 the broker under a running `simulate` (and `replay`),
bring it back on the same data directory and ports, and the topic ends with every event exactly once."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from brokers import KillableKafka, cli, end_total
from workers import consume_all, wait_until

from producers.patience import Backoff, duration

PORTS = "khorgos,alashankou,irkeshtam,lektse"
START = "2024-05-01"
DAYS = "2"
SPEED = "7200"  # two simulated hours a second: ~25 s of publishing, a few hundred events a second


def _through_an_outage(broker: KillableKafka, command: list[str], topic: str, err_path: Path) -> str:
    """Run `command`, kill -9 the broker once some of its events are in, restart it 4 s later; the
    command's stderr once it ended with exit 0."""
    with open(err_path, "wb") as err:
        proc = cli(*command, "--bootstrap", broker.bootstrap, "--topic", topic, "--no-progress",
                    "--patience", "120", stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        try:
            wait_until(lambda: end_total(broker.bootstrap, topic) >= 1500, 60, "the first events on the topic")
            assert proc.poll() is None, "the command finished before the outage: slow it down"
            broker.kill()
            time.sleep(4)
            assert proc.poll() is None, f"the command gave up during the outage: {err_path.read_text()}"
            broker.restart()
            code = proc.wait(180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = err_path.read_text()
    assert code == 0, text
    return text


def _assert_told_and_clean(stderr: str, bootstrap: str) -> None:
    retries = [line for line in stderr.splitlines() if f"Kafka at {bootstrap} is not answering" in line]
    assert retries, stderr
    assert all("retrying in" in line and "attempt" in line for line in retries), retries
    assert f"Kafka at {bootstrap} acknowledges again" in stderr, stderr
    for noise in ("Traceback", "Future exception was never retrieved", "Task exception", "Unclosed"):
        assert noise not in stderr, stderr


def _assert_exactly_once(bootstrap: str, topic: str, expected: list[bytes]) -> None:
    got = [m.value for m in consume_all(bootstrap, topic)]
    ids = Counter(orjson.loads(v)["event_id"] for v in got)
    doubled = [i for i, n in ids.items() if n > 1]
    missing = set(orjson.loads(v)["event_id"] for v in expected) - set(ids)
    assert not doubled, f"{len(doubled)} events doubled, e.g. {doubled[:3]}"
    assert not missing, f"{len(missing)} events missing, e.g. {sorted(missing)[:3]}"
    assert Counter(got) == Counter(expected)  # the very bytes, each once


@pytest.fixture
def broker(tmp_path):
    kafka = KillableKafka(tmp_path / "kafka")
    try:
        yield kafka
    finally:
        kafka.stop()


def _expected_log(tmp_path: Path) -> tuple[Path, list[bytes]]:
    """The run's events as a log: same options and seed, same events."""
    log = tmp_path / "expected.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "crossing_monitor", "simulate", "--ports", PORTS, "--start", START, "--days", DAYS,
         "--out", str(log), "--no-progress"],
        capture_output=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in log.read_bytes().splitlines() if line.strip()]
    assert len(set(orjson.loads(line)["event_id"] for line in lines)) == len(lines) > 8000
    return log, lines


def test_backoff_doubles_from_one_second_to_thirty_within_the_patience():
    backoff = Backoff(patience=1000.0)
    assert [backoff.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff.attempt == 8
    short = Backoff(patience=2.5, started=0.0)  # started long ago (monotonic 0): patience spent
    assert short.next_delay() is None and short.attempt == 0
    last = Backoff(patience=5.0)
    last.started -= 4.5  # half a second of patience left: the wait ends with it
    assert 0.4 < last.next_delay() <= 0.5


def test_durations_read_well():
    seconds = (0.42, 1.0, 45.2, 600, 5400, 9000)
    assert [duration(s) for s in seconds] == ["0.4 s", "1 s", "45 s", "10 min", "90 min", "2.5 h"]


@pytest.mark.kafka
def test_simulate_rides_out_a_broker_killed_and_restarted(broker, tmp_path):
    _, expected = _expected_log(tmp_path)
    topic = f"outage-sim-{uuid.uuid4().hex[:8]}"
    command = ["simulate", "--ports", PORTS, "--start", START, "--days", DAYS, "--speed", SPEED]
    stderr = _through_an_outage(broker, command, topic, tmp_path / "simulate.err")
    _assert_told_and_clean(stderr, broker.bootstrap)
    assert f"{len(expected):,} events of" in stderr  # acknowledged, as it says at the end
    _assert_exactly_once(broker.bootstrap, topic, expected)


@pytest.mark.kafka
def test_replay_rides_out_a_broker_killed_and_restarted(broker, tmp_path):
    log, expected = _expected_log(tmp_path)
    topic = f"outage-replay-{uuid.uuid4().hex[:8]}"
    stderr = _through_an_outage(broker, ["replay", str(log), "--speed", SPEED], topic, tmp_path / "replay.err")
    _assert_told_and_clean(stderr, broker.bootstrap)
    assert f"replayed {len(expected):,} messages" in stderr
    _assert_exactly_once(broker.bootstrap, topic, expected)


@pytest.mark.kafka
def test_a_broker_gone_past_the_patience_is_one_honest_line(broker, tmp_path):
    """Given up: exit 2, one line, no traceback, and its figures bracket what the topic holds."""
    topic = f"outage-gone-{uuid.uuid4().hex[:8]}"
    command = ["simulate", "--ports", PORTS, "--start", START, "--days", DAYS, "--speed", SPEED, "--patience", "4"]
    proc = cli(*command, "--bootstrap", broker.bootstrap, "--topic", topic, "--no-progress",
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_until(lambda: end_total(broker.bootstrap, topic) >= 1500, 60, "the first events on the topic")
        broker.kill()
        started = time.monotonic()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    took = time.monotonic() - started
    stderr = err.decode()
    assert proc.returncode == 2, stderr
    assert 4 <= took < 15, took
    last = stderr.strip().splitlines()[-1]
    found = re.search(r"gave up with ([\d,]+) events acknowledged and ([\d,]+) handed over that may or may not", last)
    assert found and "acknowledged nothing for 4 s" in last, stderr
    assert "Traceback" not in stderr and "Future exception" not in stderr and "Task exception" not in stderr, stderr
    acked, unsure = (int(g.replace(",", "")) for g in found.groups())
    broker.restart()
    on_topic = len(consume_all(broker.bootstrap, topic))
    assert acked <= on_topic <= acked + unsure


@pytest.mark.kafka
def test_a_stopped_feed_waits_a_short_grace_not_the_patience_for_a_broker_that_is_gone(broker, tmp_path):
    """The demo killed outright: every child gets its death signal at once, the broker too. The traffic
    feed, stopped with events unacknowledged, gives the broker STOP_GRACE_SECONDS, not 10 minutes."""
    from producers.simulate import STOP_GRACE_SECONDS

    topic = f"outage-stop-{uuid.uuid4().hex[:8]}"
    err_path = tmp_path / "feed.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crossing_monitor.cli.demo", "feed", broker.bootstrap, topic, "600", "1"],
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        try:
            wait_until(lambda: end_total(broker.bootstrap, topic) >= 500, 60, "the first events on the topic")
            broker.kill()
            time.sleep(2)  # events go on being sent at 600x: some are handed over, none acknowledged
            started = time.monotonic()
            proc.terminate()
            code = proc.wait(STOP_GRACE_SECONDS + 30)
            took = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr = err_path.read_text()
    assert code == 0, stderr
    assert STOP_GRACE_SECONDS - 1 < took < STOP_GRACE_SECONDS + 15, (took, stderr)
    line = next(line for line in stderr.splitlines() if "stopped; Kafka did not acknowledge the rest" in line)
    figures = re.findall(r"([\d,]+) events acknowledged, ([\d,]+) handed", line)[0]
    acked, handed = (int(n.replace(",", "")) for n in figures)
    assert handed > 0 and acked >= 500, line
    for noise in ("Traceback", "Future exception was never retrieved", "Task exception", "Unclosed"):
        assert noise not in stderr, stderr
