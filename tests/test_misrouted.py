"""Events count for their port whatever their key (SPEC 1.1 §1), and any worker answers for every
port (SPEC §3), on a real broker (issue 12, item 5).

- A keyless and a wrongly keyed producer (aiokafka, explicit partitions): the worker forwards each
  event to its port's partition, so its figures equal `analyze` of the lines, each port has one
  state, and /metrics repeats no series.
- Two workers behind a librdkafka producer keyed correctly (its default partitioner is not Kafka's
  murmur2): both answer /api/ports and /api/ports/{port} for every port with `analyze`'s figures;
  with one of them killed, the other names it as unreachable and a port it held answers 503.
"""

from __future__ import annotations

import uuid
import zlib
from collections import Counter
from typing import Any

import orjson
import pytest
from messy import messy_log
from prometheus_client.parser import text_string_to_metric_families
from workers import PARTITIONS, WorkerProcess, api_equals, key_of, wait_until
from workers import port_without_order_dependent as _strip

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.kafka.admin import create_topics

pytestmark = pytest.mark.kafka

CAT = load_catalogue()


def same(got: dict, want: dict) -> bool:
    """One port's figures equal, but the order-dependent samples (tests/workers.py)."""
    return _strip(got) == _strip(want)


@pytest.fixture(scope="module")
def log() -> tuple[list[bytes], dict]:
    lines, _bad = messy_log(days=0.5, seed=23)
    monitor = Monitor(CAT)
    monitor.process_all(lines)
    return lines, monitor.report()


def _event_id(line: bytes) -> str | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    found = obj.get("event_id") if isinstance(obj, dict) else None
    return found if isinstance(found, str) else None


def misrouted(line: bytes, i: int) -> tuple[int, bytes | None]:
    """(partition, key) as a careless gateway sends it: no key, or another port's name, on a partition
    picked from the event id (the copies of a duplicate go together, so the first copy stays first)."""
    eid = _event_id(line)
    pick = zlib.crc32(eid.encode()) if eid is not None else i
    slugs = list(CAT)
    key = None if pick % 3 == 0 else slugs[pick % len(slugs)].encode()
    return pick % PARTITIONS, key


async def _produce_misrouted(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i, line in enumerate(lines):
            partition, key = misrouted(line, i)
            await producer.send(topic, line, key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


def produce_librdkafka(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    """Keyed by port, with librdkafka's default partitioner (consistent_random: CRC32, not murmur2)."""
    from confluent_kafka import Producer

    failed: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True})
    for line in lines:
        while True:
            try:
                producer.produce(
                    topic, value=line, key=key_of(line), on_delivery=lambda err, _m: err and failed.append(str(err))
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(30) == 0, "librdkafka did not deliver everything"
    assert not failed, failed[:3]


def repeated_series(text: str) -> list[tuple[str, tuple]]:
    """(sample name, labels) that occur more than once in a Prometheus exposition."""
    seen = Counter(
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    )
    return [series for series, n in seen.items() if n > 1]


def states_by_port(workers: list[WorkerProcess]) -> dict[str, list[tuple[str, str]]]:
    """{port: [(worker url, partition)]} of every partition state holding the port."""
    found: dict[str, list[tuple[str, str]]] = {}
    for worker in workers:
        for partition, state in worker.get("/healthz")["state"].items():
            for port in state["ports"]:
                found.setdefault(port, []).append((worker.url, partition))
    return found


def metric(text: str, name: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def test_keyless_and_wrongly_keyed_events_count_once_for_their_port(kafka, log, tmp_path):
    import asyncio

    lines, expected = log
    topic = f"misrouted-{uuid.uuid4().hex[:6]}"
    create_topics(kafka.bootstrap, {topic: PARTITIONS})
    asyncio.run(_produce_misrouted(kafka.bootstrap, topic, lines))
    worker = WorkerProcess(kafka.bootstrap, topic, tmp_path).start()
    try:
        wait_until(api_equals(worker, expected), 120, "the worker to equal analyze of the lines")
        text = worker.metrics()
        assert repeated_series(text) == []
        assert metric(text, "crossing_worker_events_forwarded_total") > 0
        assert {port: len(where) for port, where in states_by_port([worker]).items()} == dict.fromkeys(
            expected["ports"], 1
        )
        for port, report in expected["ports"].items():
            assert same(worker.get(f"/api/ports/{port}"), report)
        assert worker.healthy()
    finally:
        worker.stop()


def _answers_everything(workers: list[WorkerProcess], expected: dict[str, Any]):
    def check():
        for worker in workers:
            if not api_equals(worker, expected)():
                return api_equals(worker, expected)()
        return True

    return check


def test_two_workers_behind_librdkafka_both_answer_for_every_port_and_name_a_dead_one(kafka, log, tmp_path):
    lines, expected = log
    topic = f"librdkafka-{uuid.uuid4().hex[:6]}"
    create_topics(kafka.bootstrap, {topic: PARTITIONS})
    produce_librdkafka(kafka.bootstrap, topic, lines)
    first = WorkerProcess(kafka.bootstrap, topic, tmp_path, "first").start()
    second = WorkerProcess(kafka.bootstrap, topic, tmp_path, "second").start()
    workers = [first, second]
    try:
        wait_until(
            lambda: all(len(w.get("/healthz")["assigned"]) > 0 for w in workers), 90, "both workers to hold partitions"
        )
        wait_until(_answers_everything(workers, expected), 120, "both workers to answer with analyze's figures")
        for worker in workers:
            for port, report in expected["ports"].items():
                assert same(worker.get(f"/api/ports/{port}"), report)
            assert repeated_series(worker.metrics()) == []
        held = states_by_port(workers)
        assert all(len(where) == 1 for where in held.values()), held
        theirs = sorted(port for port, where in held.items() if where[0][0] == second.url)
        assert theirs, f"the second worker holds no port: {held}"

        second.kill()  # the group still lists it until its session times out (10 s)
        answer = first.get("/api/ports")
        assert [u["worker"] for u in answer["unreachable"]] == [second.url], answer.get("unreachable")
        assert answer["unreachable"][0]["reason"]
        assert not set(theirs) & set(answer["ports"])
        gone = first.get_raw(f"/api/ports/{theirs[0]}")
        assert gone.status_code == 503
        assert gone.json()["unreachable"][0]["worker"] == second.url

        # once the group has moved the dead worker's partitions, the survivor answers for everything
        wait_until(api_equals(first, expected), 120, "the survivor to answer for every port")
    finally:
        for worker in workers:
            worker.stop()
