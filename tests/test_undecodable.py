"""A record batch that cannot be decoded is skipped with its offsets, never raised for ever.

On the real broker: a partition holds gzip, lz4 and gzip batches; a consumer that lacks the lz4
library (aiokafka's codec check patched) raises on every fetch by itself, and with
`skip_undecodable` reads every other record and is told exactly which offsets it lost.
"""

from __future__ import annotations

import asyncio
import uuid
from unittest import mock

import pytest

from crossing_monitor.kafka.admin import create_topics
from streams.undecodable import skip_undecodable

pytestmark = pytest.mark.kafka

PARTS = (("gzip", 40), ("lz4", 30), ("gzip", 20))


async def _fill(bootstrap: str, topic: str) -> list[bytes]:
    from aiokafka import AIOKafkaProducer

    sent = []
    for codec, n in PARTS:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=50, acks="all")
        await producer.start()
        try:
            batch = [f'{{"codec": "{codec}", "n": {i}, "pad": "{"x" * 200}"}}'.encode() for i in range(n)]
            for value in batch:
                await producer.send(topic, value, partition=0)
            await producer.flush()
        finally:
            await producer.stop()
        sent += batch
    return sent


async def _read(bootstrap: str, topic: str, rounds: int = 8) -> tuple[list, list[str]]:
    """(records read, errors raised) over a few fetches, as a client without the lz4 library."""
    import aiokafka.codec
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    records, errors = [], []
    with mock.patch.object(aiokafka.codec, "has_lz4", lambda: False):
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            for _ in range(rounds):
                try:
                    got = await consumer.getmany(timeout_ms=500)
                except Exception as exc:  # noqa: BLE001 - what the consumer raises is the finding
                    errors.append(type(exc).__name__)
                    continue
                records += got.get(tp, [])
        finally:
            await consumer.stop()
    return records, errors


def test_an_undecodable_batch_is_skipped_with_its_offsets_and_the_rest_is_read(kafka):
    topic = f"undecodable-{uuid.uuid4().hex[:6]}"
    create_topics(kafka.bootstrap, {topic: 1})
    sent = asyncio.run(_fill(kafka.bootstrap, topic))

    records, errors = asyncio.run(_read(kafka.bootstrap, topic))
    assert records == [] and errors and set(errors) == {"UnsupportedCodecError"}  # stuck: every fetch raises

    skipped = []
    stop = skip_undecodable(lambda tp, first, last, exc: skipped.append((tp.partition, first, last, type(exc))))
    try:
        records, errors = asyncio.run(_read(kafka.bootstrap, topic))
    finally:
        stop()
    assert errors == []
    assert [r.value for r in records] == sent[:40] + sent[70:]  # in order, nothing twice
    assert [r.offset for r in records] == list(range(40)) + list(range(70, 90))
    lost = sorted({o for _p, first, last, _e in skipped for o in range(first, last + 1)})
    assert lost == list(range(40, 70))  # exactly the lz4 records, reported
    assert {e.__name__ for *_x, e in skipped} == {"UnsupportedCodecError"}

    records, errors = asyncio.run(_read(kafka.bootstrap, topic, rounds=2))  # stopped: aiokafka as it was
    assert records == [] and errors
