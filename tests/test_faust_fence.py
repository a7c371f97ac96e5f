"""The Faust and aiokafka internals the worker relies on, fenced: an upgrade that changes one fails here.

Why: the worker's speed and its exactness rest on overriding or calling private methods of Faust and
aiokafka (`streams/transport.py`, `streams/workerapp.py`, `streams/adapters.py`, `streams/exporter.py`,
`streams/undecodable.py`, `streams/rawrecords.py`)
and on the order in which Faust's recovery calls our hooks. faust-streaming is pinned exactly in
pyproject.toml; this test hashes the source of each of those methods as installed and compares it
with the hash recorded when the overrides were last reviewed. On a failure: read the changed methods
against what the worker assumes, adapt, and record the new hashes (the message lists them).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect

import pytest

# "module:Class.method": first 16 hex digits of sha256(inspect.getsource(method)), faust-streaming
# 0.15.3 and aiokafka 0.14.0
REVIEWED = {
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer": "c2701bfc3e6f6cad",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._seek_wait": "9d221e816d940467",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._fetch_records": "39a2c6c79fc1455a",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._highwaters": "a7f4f97d9f32aca2",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.getmany": "26fc5fc9f3b667e1",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.highwater": "6f7dbe109ae6807f",
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread": "0870ec53dea75083",
    "faust.transport.drivers.aiokafka:Consumer._to_message": "7c24f6511b2fcef7",
    "faust.transport.consumer:Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.consumer:Consumer._wait_next_records": "6218e1969a636b3f",
    "faust.transport.consumer:Consumer._get_active_partitions": "b24897f3c7afdb5d",
    "faust.transport.consumer:Consumer._set_active_tps": "401f4dc883191950",
    "faust.transport.consumer:Consumer.pause_partitions": "27a1c94bdacd54de",
    "faust.transport.consumer:Consumer.resume_partitions": "afe6b7c02a41d63c",
    "faust.transport.consumer:Consumer._add_gap": "4df2573ded7c1c2c",
    "faust.transport.consumer:Consumer._commit_offsets": "1a69799041188441",
    "faust.transport.consumer:ThreadDelegateConsumer.seek_wait": "e9db5bbc4ceb2543",
    "faust.transport.consumer:ThreadDelegateConsumer.highwater": "f52cb0d26a713c3a",
    "faust.transport.consumer:ThreadDelegateConsumer.highwaters": "3a2723b22582ffb7",
    "faust.transport.consumer:ThreadDelegateConsumer.earliest_offsets": "2833b09d2888825b",
    "faust.app.base:App._new_transport": "42db531312dd776f",
    "faust.app.base:App._producer_flush": "35c92baa028d57bd",
    "faust.app.base:App._stop_consumer": "55854a5de12c3f52",
    "faust.tables.recovery:Recovery._resume_streams": "d986a6710c1aca98",
    "faust.tables.base:Collection.send_changelog": "3dd3884e1b5fc0e1",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.__init__": "01506f316191f7c9",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.start": "2f1ba70443327538",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.seek": "a9430f1f3b9ac419",
    "aiokafka.consumer.fetcher:Fetcher.fetched_records": "be4348896b9b66af",
    # streams.undecodable wraps PartitionRecords.__init__ around these
    "aiokafka.consumer.fetcher:PartitionRecords._unpack_records": "b803e6d46480732c",
    "aiokafka.consumer.fetcher:FetchResult.getall": "3e717e30de5068d5",
    # streams.rawrecords replaces this one for the source topic (the records it wraps go on as they are)
    "aiokafka.consumer.fetcher:PartitionRecords._consumer_record": "e668541600b047ab",
}


def _source_hash(name: str) -> str:
    module, qualname = name.split(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def test_the_private_faust_and_aiokafka_methods_the_worker_relies_on_are_unchanged():
    changed = {}
    for name, reviewed in REVIEWED.items():
        try:
            now = _source_hash(name)
        except (AttributeError, ImportError, OSError, TypeError) as exc:
            now = f"gone ({type(exc).__name__})"
        if now != reviewed:
            changed[name] = now
    if changed:
        listing = "\n".join(f"  {name}: {REVIEWED[name]} -> {now}" for name, now in changed.items())
        pytest.fail(
            f"{len(changed)} Faust/aiokafka internals the worker overrides or calls changed in this install; "
            f"review streams/transport.py against them, then record the new hashes:\n{listing}",
            pytrace=False,
        )


def test_the_fence_notices_a_change():
    """The check itself: a recorded hash that does not match is reported with its name."""
    name = next(iter(REVIEWED))
    assert _source_hash(name) == REVIEWED[name]
    assert _source_hash("faust.transport.consumer:Consumer.pause_partitions") != _source_hash(
        "faust.transport.consumer:Consumer.resume_partitions"
    )


def test_the_installed_faust_is_the_pinned_one():
    from importlib.metadata import requires, version

    pins = [r for r in requires("crossing-monitor") or [] if r.startswith("faust-streaming")]
    assert pins == [f"faust-streaming=={version('faust-streaming')}"], pins
