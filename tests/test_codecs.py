"""Every Kafka compression codec (SPEC 1.1 §1), from librdkafka and from aiokafka, read exactly.

For each codec one topic gets a messy log (bad lines included) from two producers: librdkafka
(`confluent-kafka`, `compression.type`, the C client most gateways use) sends some ports, aiokafka
(`compression_type`) the others, each port from one producer so that it keeps its order. Then
`record` of the topic, analysed, and a real worker's /api/ports both equal `analyze` of the lines
sent. A reader without the codec's library fails on the topic: so its batches really are in that
codec (librdkafka sends a batch uncompressed when compressing would not make it smaller).
"""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from messy import messy_log
from simhelpers import run_cli
from workers import PARTITIONS, WorkerProcess, api_equals, key_of, wait_until

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.kafka.admin import create_topics
from crossing_monitor.logs.analyze import analyze_log

pytestmark = pytest.mark.kafka

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
LIBRDKAFKA_PORTS = frozenset({"khorgos", "lektse", "irkeshtam"})  # the other ports go through aiokafka


@pytest.fixture(scope="module")
def log() -> tuple[list[bytes], list[bytes], dict]:
    """(lines for librdkafka, lines for aiokafka, analyze of all of them)."""
    lines, _bad = messy_log(days=0.5, seed=5)
    ours, theirs = [], []
    for i, line in enumerate(lines):
        port = _port(line)
        side = ours if (port in LIBRDKAFKA_PORTS if port is not None else i % 2) else theirs
        side.append(line)
    monitor = Monitor(load_catalogue())
    monitor.process_all(lines)
    return ours, theirs, monitor.report()


def _port(line: bytes) -> str | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return obj.get("port") if isinstance(obj, dict) and isinstance(obj.get("port"), str) else None


def produce_librdkafka(bootstrap: str, topic: str, lines: list[bytes], codec: str) -> None:
    from confluent_kafka import Producer

    failed: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            failed.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "linger.ms": 20,
            "enable.idempotence": True,  # in order, nothing twice
        }
    )
    for line in lines:
        while True:
            try:
                producer.produce(topic, value=line, key=key_of(line), on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(30) == 0, "librdkafka did not deliver everything"
    assert not failed, failed[:3]


async def _produce_aiokafka(bootstrap: str, topic: str, lines: list[bytes], codec: str) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        linger_ms=10,
        max_batch_size=1 << 18,
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        for line in lines:
            await producer.send(topic, line, key=key_of(line))
        await producer.flush()
    finally:
        await producer.stop()


async def _read_without(bootstrap: str, topic: str, hidden: list[str]) -> int:
    """Read the whole topic as a client that lacks the libraries of `hidden` codecs; how many records."""
    from unittest import mock

    import aiokafka.codec
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    with mock.patch.multiple(aiokafka.codec, **{f"has_{name}": lambda: False for name in hidden}):
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            n = 0
            while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                n += sum(map(len, (await consumer.getmany(timeout_ms=1000)).values()))
            return n
        finally:
            await consumer.stop()


@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_from_librdkafka_and_aiokafka_is_recorded_and_counted_exactly(kafka, log, codec, tmp_path):
    from aiokafka.errors import UnsupportedCodecError

    ours, theirs, expected = log
    topic = f"codec-{codec}-{uuid.uuid4().hex[:6]}"
    create_topics(kafka.bootstrap, {topic: PARTITIONS})
    produce_librdkafka(kafka.bootstrap, topic, ours, codec)
    asyncio.run(_produce_aiokafka(kafka.bootstrap, topic, theirs, codec))

    if codec == "none":
        assert asyncio.run(_read_without(kafka.bootstrap, topic, CODECS[1:])) == len(ours) + len(theirs)
    else:
        with pytest.raises(UnsupportedCodecError, match=codec):
            asyncio.run(_read_without(kafka.bootstrap, topic, [codec]))

    recording = tmp_path / f"{codec}.jsonl.gz"
    assert run_cli("record", str(recording), "--topic", topic, "--bootstrap", kafka.bootstrap) == 0
    assert analyze_log(str(recording), load_catalogue()) == expected

    worker = WorkerProcess(kafka.bootstrap, topic, tmp_path).start()
    try:
        wait_until(api_equals(worker, expected), 120, f"the worker to equal analyze ({codec})")
        assert worker.healthy()
    finally:
        worker.stop()
