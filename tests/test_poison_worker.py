"""No record can hurt the worker (SPEC 1.1 §1, §2; issue 12), on a real broker and a real worker.

- A 900 KB payload of control bytes (six times larger once escaped) among other rejects: every
  rejection has its dead letter in the topic, the big one cut to fit, with its length and hash.
- A fuzz run: arbitrary JSON values, byte strings and events with fields changed (hypothesis),
  sent with no key, wrong keys and explicit partitions, in three rounds to one worker. The worker
  never stops, /api/ports equals `analyze` of the lines after every round, and every rejected
  record is in the dead-letter topic exactly once with its reason.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import uuid
import zlib
from collections import Counter
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_core import BASE as CORE_FUZZ_BASE
from workers import PARTITIONS, WorkerProcess, api_equals, consume_all, wait_until

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.events import Rejection
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.kafka.admin import create_topics
from producers.run import Run

pytestmark = pytest.mark.kafka

CAT = load_catalogue()
START = datetime.fromisoformat("2024-05-01T06:00:00+08:00")


async def _send(bootstrap: str, topic: str, lines: list[bytes], seed: int) -> None:
    """Each line with no key or a random one, on a partition picked from its event id (the copies of
    one id keep their order), or at random when it has none."""
    from aiokafka import AIOKafkaProducer

    rng = random.Random(seed)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=10, acks="all", enable_idempotence=True, max_request_size=2 << 20
    )
    await producer.start()
    try:
        for line in lines:
            eid = _event_id(line)
            partition = zlib.crc32(eid) % PARTITIONS if eid is not None else rng.randrange(PARTITIONS)
            key = rng.choice([None, b"", rng.randbytes(8), b"khorgos", b"lektse"])
            await producer.send(topic, line, key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


def _event_id(line: bytes) -> bytes | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return orjson.dumps(obj.get("event_id")) if isinstance(obj, dict) and "event_id" in obj else None


def expected_letters(lines: list[bytes]) -> Counter:
    """(reason, payload) of every record that must be in the dead-letter topic: each rejection but duplicates."""
    monitor = Monitor(CAT)
    out: Counter = Counter()
    for line in lines:
        result = monitor.process(line)
        if type(result) is Rejection and result.reason != "duplicate":
            out[(result.reason, line)] += 1
    return out


def letters_in(bootstrap: str, dlq: str) -> tuple[Counter, list[dict[str, Any]]]:
    """(reason, payload) of the dead letters in the topic, and the letters themselves."""
    letters = [orjson.loads(m.value) for m in consume_all(bootstrap, dlq)]
    found: Counter = Counter()
    for letter in letters:
        payload = base64.b64decode(letter["payload_base64"]) if "payload_base64" in letter else letter["payload"]
        found[(letter["reason"], payload if isinstance(payload, bytes) else payload.encode())] += 1
    return found, letters


def analyze(lines: list[bytes]) -> dict[str, Any]:
    monitor = Monitor(CAT)
    monitor.process_all(lines)
    return monitor.report()


def test_a_huge_control_byte_payload_is_a_dead_letter_that_fits(kafka, tmp_path):
    topic = f"poison-{uuid.uuid4().hex[:6]}"
    create_topics(kafka.bootstrap, {topic: PARTITIONS})
    huge = b"\x01" * 900_000
    valid = list(Run(CAT, ["lektse"], START, 0.1).lines())
    lines = [*valid[:20], huge, *(b"{bad %d" % i for i in range(10)), *valid[20:]]
    asyncio.run(_send(kafka.bootstrap, topic, lines, seed=1))
    worker = WorkerProcess(kafka.bootstrap, topic, tmp_path).start()
    try:
        expected = analyze(lines)
        assert expected["rejected"]["malformed"] == 11
        wait_until(api_equals(worker, expected), 90, "the worker to count every line")
        dlq = f"{topic}.dlq"
        wait_until(lambda: len(consume_all(kafka.bootstrap, dlq)) >= 11, 60, "the dead letters")
        found, letters = letters_in(kafka.bootstrap, dlq)
        rejected = worker.get("/api/ports")["rejected"]
        assert sum(n for reason, n in rejected.items() if reason != "duplicate") == len(letters) == 11
        [big] = [x for x in letters if x.get("payload_truncated")]
        assert big["payload_bytes"] == len(huge) and big["payload_sha256"] == hashlib.sha256(huge).hexdigest()
        assert big["reason"] == "malformed" and big["payload"] and huge.startswith(big["payload"].encode())
        assert worker.healthy()
    finally:
        worker.stop()


# ---- the fuzz run ---------------------------------------------------------------------------------

BASE = {**CORE_FUZZ_BASE, "event_id": "f1"}  # the core fuzz test's event, fuzzed here through the worker
KINDS = [
    BASE,
    {**BASE, "type": "gate.entered", "ts": "2024-05-01T08:10:00+08:00"},
    {**BASE, "type": "vehicle.arrived", "ts": "2024-05-01T08:00:00+08:00", "booked": True, "port": "lektse"},
    {**BASE, "type": "scan.completed", "result": "flagged", "port": "lektse"},
]
EDGES = st.sampled_from(
    ["2099-12-31T23:59:59.999Z", "2000-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2024-02-30T00:00:00Z", 1000, -1]
    + ["lektse", "khorgos", "atlantis", "", "x" * 129, None, 0.0, True]
    + ["9999-12-31T23:59:59-12:00", 1e308]  # the core raises on these today: left out below, until it does not
)
LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | EDGES
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)


def _dumps(value: Any) -> bytes:
    """JSON as any encoder might write it: integers past 64 bits, NaN, lone surrogates included."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def message(draw: Any) -> bytes:
    """Any bytes, any JSON value, or (most often) an event with a field or two changed or removed."""
    kind = draw(st.sampled_from(["bytes", "json", "event", "event", "event"]))
    if kind == "bytes":
        return draw(st.binary(max_size=120))
    if kind == "json":
        return _dumps(draw(JSON))
    value = dict(draw(st.sampled_from(KINDS)))
    value["event_id"] = draw(st.text(min_size=1, max_size=6))
    for _ in range(draw(st.integers(0, 2))):
        field = draw(st.sampled_from([*sorted(BASE), "booked", "result", "extra"]))
        action = draw(st.sampled_from(["edge", "any", "drop"]))
        if action == "drop":
            value.pop(field, None)
        else:
            value[field] = draw(EDGES if action == "edge" else JSON)
    return _dumps(value)


def fuzzed(examples: int = 150) -> list[bytes]:
    """The lines of `examples` hypothesis examples (a few messages each)."""
    out: list[bytes] = []

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=True,  # the same lines every run: a failure on the broker can be replayed
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(message(), min_size=1, max_size=5))
    def collect(batch: list[bytes]) -> None:
        out.extend(batch)

    collect()
    return out


def _core_survives(lines: list[bytes]) -> bool:
    try:
        orjson.dumps(analyze(lines))
    except Exception:  # noqa: BLE001 - a core defect (tests/test_fuzz_core.py's business)
        return False
    return True


def without_core_defects(lines: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(lines the metric core takes, lines on which it raises). The worker's own guard dead-letters the
    latter but cannot undo what the core half-did, and `analyze` has no figures to compare with, so
    they are left out here: the core's fuzz test covers them, and once it passes none is left out."""
    alone = [line for line in lines if _core_survives([line])]
    if _core_survives(alone):
        return alone, [line for line in lines if line not in alone]
    kept: list[bytes] = []  # a defect that needs two lines: find them one by one
    for line in alone:
        if _core_survives([*kept, line]):
            kept.append(line)
    return kept, [line for line in lines if line not in kept]


def test_fuzzed_records_never_stop_the_worker_and_each_reject_is_dead_lettered_once(kafka, tmp_path):
    rng = random.Random(12)
    valid = list(Run(CAT, ["khorgos", "lektse"], START, 0.2).lines())
    lines = fuzzed()
    lines += valid
    rng.shuffle(lines)
    lines, dropped = without_core_defects(lines)
    assert len(dropped) < len(lines) // 20, dropped[:5]
    topic = f"fuzz-{uuid.uuid4().hex[:6]}"
    create_topics(kafka.bootstrap, {topic: PARTITIONS})
    worker = WorkerProcess(kafka.bootstrap, topic, tmp_path).start()
    try:
        sent: list[bytes] = []
        third = len(lines) // 3 + 1
        for round_ in range(3):
            part = lines[round_ * third : (round_ + 1) * third]
            asyncio.run(_send(kafka.bootstrap, topic, part, seed=round_))
            sent += part
            wait_until(api_equals(worker, analyze(sent)), 120, f"the worker to equal analyze after round {round_}")
            assert worker.healthy()
        expected = expected_letters(sent)
        assert sum(expected.values()) > 50  # the run did reject plenty
        dlq = f"{topic}.dlq"
        wait_until(lambda: len(consume_all(kafka.bootstrap, dlq)) >= sum(expected.values()), 60, "every dead letter")
        found, _ = letters_in(kafka.bootstrap, dlq)
        assert found == expected
        health = worker.get("/healthz")
        assert health["fold_errors"] == 0 and health["undecodable"]["batches"] == 0
    finally:
        worker.stop()
