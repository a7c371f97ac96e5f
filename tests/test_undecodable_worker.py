"""A batch the worker cannot decode is skipped, never a crash loop (issue 12, SPEC 1.1 §1).

FAILS until the worker installs `streams.undecodable.skip_undecodable` (in streams/transport.py).

The worker runs without its codec library (a `cramjam` that fails to import, first on its
PYTHONPATH), so a batch compressed with lz4 is one it cannot decode, as a codec unknown to it
would be. The records before and after that batch in the same partition are counted exactly.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from workers import WorkerProcess, api_equals, wait_until

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.kafka.admin import create_topics
from producers.run import Run

pytestmark = pytest.mark.kafka

CAT = load_catalogue()


async def _send(bootstrap: str, topic: str, lines: list[bytes], codec: str) -> None:
    """All to partition 0, lektse's, in one codec."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=10, acks="all")
    await producer.start()
    try:
        for line in lines:
            await producer.send(topic, line, key=b"lektse", partition=0)
        await producer.flush()
    finally:
        await producer.stop()


def test_a_batch_the_worker_cannot_decode_is_skipped_and_the_worker_counts_the_rest(kafka, tmp_path, monkeypatch):
    from datetime import datetime

    lines = list(Run(CAT, ["lektse"], datetime.fromisoformat("2024-05-01T00:00:00+08:00"), 3.0).lines())
    third = len(lines) // 3
    before, lost, after = lines[:third], lines[third : 2 * third], lines[2 * third :]
    topic = f"undecodable-{uuid.uuid4().hex[:6]}"
    create_topics(kafka.bootstrap, {topic: 8})
    for part, codec in ((before, "gzip"), (lost, "lz4"), (after, "gzip")):
        asyncio.run(_send(kafka.bootstrap, topic, part, codec))
    monitor = Monitor(CAT)
    monitor.process_all(before + after)
    expected = monitor.report()

    shim = tmp_path / "nocodec" / "cramjam"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("hidden by the test: no codec library")\n')
    monkeypatch.setenv("PYTHONPATH", str(shim.parent))
    worker = WorkerProcess(kafka.bootstrap, topic, tmp_path).start()
    try:
        wait_until(api_equals(worker, expected), 90, "the worker to count what it can decode")
        assert worker.healthy()
        # logged, counted on /metrics and listed on /healthz, with the offsets that were lost
        skipped = worker.get("/healthz")["undecodable"]
        assert skipped["records"] == len(lost) and skipped["batches"] >= 1
        assert {(x["partition"], x["error"].split(":")[0]) for x in skipped["recent"]} == {(0, "UnsupportedCodecError")}
        assert all(len(before) <= x["first_offset"] <= x["last_offset"] for x in skipped["recent"])
        assert skipped["recent"][-1]["last_offset"] == len(before) + len(lost) - 1  # the last few are listed
        assert f"crossing_worker_batches_undecodable_total {float(skipped['batches'])}" in worker.metrics()
        assert "cannot be decoded" in worker.log_tail(200_000)
    finally:
        worker.stop()
