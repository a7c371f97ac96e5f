"""A transactional producer on the source topic: the worker folds exactly the committed events.

Transaction markers take offsets of their own, so a batch can start past the state's offset with
nothing in between; the worker must accept that after one look, not seek back for ever, and it reads
with isolation level read_committed, so an aborted transaction's events are never counted.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from messy import messy_log
from workers import PARTITIONS, WorkerProcess, api_equals, key_of, wait_until

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.kafka.admin import create_topics

pytestmark = pytest.mark.kafka

CHUNK = 37  # events per transaction
ABORTED = {3, 11}  # the transactions rolled back


async def _produce_transactions(bootstrap: str, topic: str, chunks: list[list[bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"sensors-{uuid.uuid4().hex[:6]}")
    await producer.start()
    try:
        for i, chunk in enumerate(chunks):
            await producer.begin_transaction()
            for line in chunk:
                await producer.send(topic, line, key=key_of(line))
            if i in ABORTED:
                await producer.abort_transaction()
            else:
                await producer.commit_transaction()
    finally:
        await producer.stop()


def test_a_transactional_producer_counts_exactly_the_committed_events(kafka, tmp_path):
    lines, _ = messy_log()
    lines = lines[:20 * CHUNK]
    chunks = [lines[i : i + CHUNK] for i in range(0, len(lines), CHUNK)]
    committed = [line for i, chunk in enumerate(chunks) if i not in ABORTED for line in chunk]
    monitor = Monitor(load_catalogue())
    monitor.process_all(committed)
    expected = monitor.report()

    topic = f"test.txn.{uuid.uuid4().hex[:8]}"
    create_topics(kafka.bootstrap, {topic: PARTITIONS, topic + ".dlq": 1})
    worker = WorkerProcess(kafka.bootstrap, topic, tmp_path).start()
    try:
        asyncio.run(_produce_transactions(kafka.bootstrap, topic, chunks))
        wait_until(api_equals(worker, expected), 120, "the worker to equal analyze of the committed events")
        health = worker.get("/healthz")
        assert health["events_processed"] == len(committed)
        # settled: no seek loop on the markers' offsets
        again = health["reads_again"]
        assert again <= len(chunks) * PARTITIONS
        time.sleep(4)
        later = worker.get("/healthz")
        assert later["reads_again"] == again and later["events_processed"] == len(committed)
        assert worker.get("/api/ports") == expected
    finally:
        worker.stop()
