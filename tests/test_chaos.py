"""Chaos: kill -9 the broker while a messy log flows through `replay` into a worker, bring it back on
the same data directory, and the worker ends with exactly the figures `analyze` gives for the log."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter

import pytest
from brokers import KillableKafka, cli, end_total
from messy import messy_log
from workers import WorkerProcess, api_equals, consume_all, wait_until

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.monitor import Monitor

pytestmark = pytest.mark.kafka

SPEED = "4000"  # the messy log's 1.5 days in about half a minute


def test_broker_killed_mid_log_and_restarted_leaves_the_worker_exactly_at_analyze(tmp_path):
    lines, _ = messy_log()
    monitor = Monitor(load_catalogue())
    monitor.process_all(lines)
    expected = monitor.report()
    log = tmp_path / "messy.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    topic = f"chaos.events.{uuid.uuid4().hex[:8]}"

    broker = KillableKafka(tmp_path / "kafka")
    worker = None
    replay = None
    try:
        worker = WorkerProcess(broker.bootstrap, topic, tmp_path).start()
        with open(tmp_path / "replay.err", "wb") as err:
            replay = cli("replay", str(log), "--speed", SPEED, "--bootstrap", broker.bootstrap, "--topic", topic,
                         "--no-progress", "--patience", "180", stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        third = len(lines) // 3
        wait_until(lambda: end_total(broker.bootstrap, topic) >= third, 90, "a third of the log on the topic")
        wait_until(lambda: worker.get("/healthz")["events_processed"] > 0, 30, "the worker to be folding")
        assert replay.poll() is None, "the replay ended before the outage: slow it down"

        broker.kill()
        time.sleep(4)
        assert worker.proc.poll() is None, f"the worker died with the broker: {worker.log_tail()}"
        broker.restart()

        assert replay.wait(180) == 0, (tmp_path / "replay.err").read_text()
        stderr = (tmp_path / "replay.err").read_text()
        assert "is not answering" in stderr and "Traceback" not in stderr, stderr
        on_topic = [m.value for m in consume_all(broker.bootstrap, topic)]
        assert Counter(on_topic) == Counter(lines)  # every line once: what the worker sees is the log
        wait_until(api_equals(worker, expected), 240, "the worker to equal analyze after the outage")
    finally:
        if replay is not None and replay.poll() is None:
            replay.kill()
            replay.wait()
        if worker is not None:
            worker.stop()
        broker.stop()
