"""A worker stops within 10 s of SIGTERM, whatever the broker's state (Kubernetes allows 30 s)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest
from messy import messy_log
from workers import WorkerProcess, produce, wait_until

from crossing_monitor.kafka.broker import LocalKafka

pytestmark = pytest.mark.kafka

STOP_WITHIN = 10.0


def test_sigterm_ends_a_worker_within_10_s_when_its_broker_is_gone(tmp_path):
    lines, _ = messy_log()
    topic = f"test.stop.{uuid.uuid4().hex[:8]}"
    broker = LocalKafka().start()
    worker = None
    try:
        # a long max age: the worker has unsaved events when the broker goes, so its stop must give up
        # on a checkpoint it cannot write
        worker = WorkerProcess(broker.bootstrap, topic, tmp_path, env={"CROSSING_MONITOR_CHECKPOINT_MAX_AGE": "600"})
        worker.start()
        produce(broker.bootstrap, topic, lines[:2000])
        wait_until(lambda: worker.get("/healthz")["events_processed"] >= 2000, 60, "the worker to fold the events")
        os.killpg(broker.pid, signal.SIGKILL)
        broker.proc.wait(10)
        time.sleep(2)  # let the worker notice
        assert worker.proc is not None and worker.proc.poll() is None
        start = time.monotonic()
        os.killpg(worker.proc.pid, signal.SIGTERM)
        try:
            worker.proc.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker ignored SIGTERM for 30 s: {worker.log_tail()}")
        took = time.monotonic() - start
        assert took < STOP_WITHIN, f"stopped after {took:.1f} s: {worker.log_tail()}"
        assert "checkpoint not acknowledged" in worker.log_tail(10**6)  # said once why nothing was saved
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
