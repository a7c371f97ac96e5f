"""The compiled Kafka record batch (`native/src/batch.rs`) writes the bytes aiokafka's own builder writes.

simulate hands the compiled batch a chunk of events joined by newlines instead of appending them one
Python call at a time; what goes to the broker must be the batch aiokafka would have sent: the same
header, producer state, records and checksum, and the same rule for when a batch is full.
"""

from __future__ import annotations

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import given, settings
from hypothesis import strategies as st

native = pytest.importorskip("crossing_monitor_native")
RecordBatch = native.RecordBatch

values = st.lists(st.binary(max_size=300).filter(lambda b: b"\n" not in b), min_size=1, max_size=60)
keys = st.one_of(st.none(), st.binary(max_size=20))
sizes = st.integers(min_value=100, max_value=20_000)
timestamps = st.integers(min_value=0, max_value=2**41)


def _both(batch_size: int):
    return BatchBuilder(batch_size, 0), RecordBatch(batch_size)


@settings(max_examples=200, deadline=None)
@given(values, keys, sizes, timestamps, st.integers(min_value=0, max_value=5000))
def test_appends_give_aiokafkas_bytes_and_fill_up_alike(vals, key, batch_size, ts, step):
    theirs, mine = _both(batch_size)
    for i, value in enumerate(vals):
        a = theirs.append(timestamp=ts + i * step, key=key, value=value)
        b = mine.append(timestamp=ts + i * step, key=key, value=value)
        assert (a is None) == (b is None), f"record {i}: full in one batch only"
        assert theirs.record_count() == mine.record_count() and theirs.size() == mine.size()
        if a is None:
            break
    assert mine.closed() == theirs.closed()
    theirs._set_producer_state(4242, 3, 17)
    mine._set_producer_state(4242, 3, 17)
    built = mine._build()
    assert built == theirs._build()
    assert mine._build() is built and mine.size() == len(built)


def test_an_empty_and_a_never_stated_batch_are_aiokafkas_too():
    theirs, mine = _both(1000)
    assert mine._build() == theirs._build()
    theirs, mine = _both(1000)
    theirs.append(timestamp=1, key=None, value=b"x")
    mine.append(timestamp=1, key=None, value=b"x")
    assert mine._build() == theirs._build()  # producer id -1, epoch -1, sequence 0: no idempotence


@settings(max_examples=200, deadline=None)
@given(values, keys, sizes, st.integers(min_value=0, max_value=70))
def test_joined_values_become_the_records_split_would_give(vals, key, batch_size, limit):
    blob = b"\n".join(vals)
    batch = RecordBatch(batch_size)
    taken, pos = batch.extend_joined(blob, 0, limit, key)
    assert taken <= limit and taken == batch.record_count()
    if taken < min(limit, len(vals)):
        assert batch.closed()  # full
    batch._set_producer_state(7, 0, 99)
    parsed = DefaultRecordBatch(batch._build())
    assert parsed.validate_crc()
    assert (parsed.producer_id, parsed.producer_epoch, parsed.base_sequence) == (7, 0, 99)
    records = list(parsed)
    assert [r.value for r in records] == vals[:taken]
    assert [r.key for r in records] == [key] * taken
    assert [r.offset for r in records] == list(range(taken))
    # the next value starts where it said: the rest goes into the next batch
    if taken < len(vals):
        assert blob[pos:].split(b"\n") == vals[taken:]
    else:
        assert pos == len(blob) + 1
    # the bytes are aiokafka's for those records at the timestamp they got
    theirs = BatchBuilder(batch_size, 0)
    for r in records:
        theirs.append(timestamp=r.timestamp, key=key, value=r.value)
    theirs._set_producer_state(7, 0, 99)
    assert theirs._build() == batch._build()


def test_joined_values_continue_in_the_next_batch_without_loss():
    vals = [f'{{"n":{i}}}'.encode() for i in range(5000)]
    blob, pos, got = b"\n".join(vals), 0, []
    while len(got) < len(vals):
        batch = RecordBatch(4096)
        taken, pos = batch.extend_joined(blob, pos, len(vals) - len(got), b"khorgos")
        assert taken > 0
        got += [r.value for r in DefaultRecordBatch(batch._build())]
    assert got == vals


def test_misuse_is_an_error_not_a_bad_batch():
    batch = RecordBatch(1000)
    with pytest.raises(ValueError, match="headers"):
        batch.append(timestamp=None, key=None, value=b"x", headers=[("h", b"v")])
    with pytest.raises(ValueError, match="past the end"):
        batch.extend_joined(b"abc", 5, 1, None)
    batch._build()
    assert batch.append(timestamp=None, key=None, value=b"x") is None  # as aiokafka's: closed
    assert batch.extend_joined(b"x", 0, 1, None) == (0, 0)
    with pytest.raises(ValueError, match="built already"):
        batch._set_producer_state(1, 0, 0)


@pytest.mark.parametrize("compiled", [True, False])
def test_the_publisher_puts_joined_chunks_on_the_topic_as_sent(kafka, compiled):
    """Through a real broker, with the compiled batch and with aiokafka's: every message once, in order,
    on its key's partition, batches cut at the batch size (small here: many batches per chunk)."""
    import asyncio
    import uuid

    from workers import consume_all

    from producers.publish import Publisher

    topic = f"batch-{uuid.uuid4().hex[:8]}"
    chunks = {key: [f'{{"port":"{key.decode()}","n":{i}}}'.encode() for i in range(3000)] for key in (b"a", b"b")}

    async def send() -> Publisher:
        publisher = Publisher(kafka.bootstrap, topic, batch_bytes=16 << 10, compiled_batches=compiled)
        async with publisher:
            assert (type(publisher._record_batch).__name__ != "NoneType") == compiled
            for start in range(0, 3000, 700):  # chunks that end inside a batch
                for key, values in chunks.items():
                    part = values[start : start + 700]
                    await publisher.send_joined(key, b"\n".join(part), len(part))
        return publisher

    publisher = asyncio.run(send())
    assert publisher.sent == publisher.handed == 6000
    got: dict[bytes, list[bytes]] = {}
    partitions: dict[bytes, set[int]] = {}
    for message in consume_all(kafka.bootstrap, topic):
        got.setdefault(message.key, []).append(message.value)
        partitions.setdefault(message.key, set()).add(message.partition)
    assert got == chunks
    assert all(len(p) == 1 for p in partitions.values())


def test_a_blob_that_does_not_hold_the_messages_announced_is_an_error():
    import asyncio

    from producers.publish import Publisher

    publisher = Publisher("127.0.0.1:1", "t")
    publisher._partitions = [0]
    publisher._open = lambda part: publisher._batches.setdefault(part, RecordBatch(1 << 20))  # type: ignore[method-assign]
    publisher._counts[0] = 0
    with pytest.raises(ValueError, match="3 messages announced, 2 in the blob"):
        asyncio.run(publisher.send_joined(b"k", b"x\ny", 3))
    with pytest.raises(ValueError, match="1 messages announced, more in the blob"):
        asyncio.run(publisher.send_joined(b"k", b"x\ny", 1))
    asyncio.run(publisher.send_joined(b"k", b"", 0))  # nothing announced: nothing sent
    with pytest.raises(ValueError, match="0 messages announced for a blob of 1 bytes"):
        asyncio.run(publisher.send_joined(b"k", b"x", 0))
    publisher._batches.clear()  # aiokafka's batches: the same checks
    publisher._open = lambda part: publisher._batches.setdefault(part, BatchBuilder(1 << 20, 0))  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="3 messages announced, 2 in the blob"):
        asyncio.run(publisher.send_joined(b"k", b"x\ny", 3))
