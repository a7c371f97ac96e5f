"""The local broker is a real Apache Kafka: keyed round trip, clean stop, fetch command."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from crossing_monitor.cli import main as cli_main
from crossing_monitor.errors import UserError
from crossing_monitor.kafka import broker as kafka_local
from crossing_monitor.kafka.admin import create_topics
from crossing_monitor.kafka.broker import LocalKafka


async def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> dict[bytes, set[int]]:
    """Send keyed messages; return the partitions the broker acknowledged for each key."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        acked = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    partitions: dict[bytes, set[int]] = {}
    for (key, _), meta in zip(messages, acked, strict=True):
        partitions.setdefault(key, set()).add(meta.partition)
    return partitions


async def _consume(bootstrap: str, topic: str, n: int, timeout: float = 60.0) -> list:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"test-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest"
    )
    await consumer.start()
    got: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(batch)
    finally:
        await consumer.stop()
    return got


@pytest.mark.kafka
def test_a_thousand_keyed_messages_round_trip_through_four_partitions(kafka):
    from aiokafka.partitioner import DefaultPartitioner

    topic = f"test.round-trip.{uuid.uuid4().hex[:8]}"
    assert create_topics(kafka.bootstrap, {topic: 4}) == [topic]
    assert create_topics(kafka.bootstrap, {topic: 4}) == []  # "already exists" is not an error

    messages = [(f"port-{i % 37}".encode(), f"{i}".encode()) for i in range(1000)]
    acked = asyncio.run(_produce(kafka.bootstrap, topic, messages))
    got = asyncio.run(_consume(kafka.bootstrap, topic, len(messages)))

    assert len(got) == len(messages)
    assert sorted((m.key, m.value) for m in got) == sorted(messages)
    partitioner = DefaultPartitioner()
    seen: dict[bytes, set[int]] = {}
    for m in got:
        seen.setdefault(m.key, set()).add(m.partition)
    for key, parts in seen.items():
        assert parts == acked[key] == {partitioner(key, [0, 1, 2, 3], [0, 1, 2, 3])}  # one key, one partition
    assert {p for parts in seen.values() for p in parts} == {0, 1, 2, 3}
    for key in seen:  # within a key (= a partition) the broker keeps the order sent
        values = [int(m.value) for m in sorted(got, key=lambda m: m.offset) if m.key == key]
        assert values == sorted(values)


def _pids_running(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


@pytest.mark.kafka
def test_stop_leaves_no_broker_process_no_listener_and_no_temp_dir():
    broker = LocalKafka().start()
    pid, port, data = broker.pid, broker.port, broker.data_dir
    assert pid is not None and data is not None
    config = str(data / "server.properties")
    assert _pids_running(config) == [pid]
    broker.stop()
    broker.stop()  # idempotent

    assert _pids_running(config) == []
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing left in its process group either
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nobody listening
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # and the port can be taken again
    assert not data.exists()


@pytest.mark.kafka
def test_broker_fetch_only_fills_the_cache_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CROSSING_MONITOR_CACHE", str(tmp_path / "cache"))
    assert cli_main(["broker", "--fetch-only"]) == 0
    assert kafka_local.marker_path().is_file()
    assert kafka_local.marker_path().parent == tmp_path / "cache" / f"kafka-{kafka_local.KAFKA_VERSION}"
    assert len(list(kafka_local.libs_dir().glob("*.jar"))) > 30
    assert [p.name for p in (tmp_path / "cache").iterdir() if ".partial-" in p.name] == []
    assert f"fetching Apache Kafka {kafka_local.KAFKA_VERSION}" in capsys.readouterr().err

    assert cli_main(["broker", "--fetch-only"]) == 0  # cached: no second download
    assert "fetching" not in capsys.readouterr().err


def test_a_port_in_use_is_one_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is already in use"):
            LocalKafka(port=port).start()


def test_missing_tools_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CROSSING_MONITOR_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="`java` not found"):
        kafka_local.fetch_jars()


def _round_trip_once(broker: LocalKafka) -> None:
    topic = f"test.version.{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, {topic: 2})
    messages = [(f"port-{i % 3}".encode(), f"{i}".encode()) for i in range(50)]
    asyncio.run(_produce(broker.bootstrap, topic, messages))
    got = asyncio.run(_consume(broker.bootstrap, topic, len(messages)))
    assert sorted((m.key, m.value) for m in got) == sorted(messages)


@pytest.mark.kafka
def test_the_default_broker_is_kafka_4_with_its_own_log4j2_configuration(kafka):
    if not isinstance(kafka, LocalKafka):
        pytest.skip("an external test broker (CROSSING_MONITOR_TEST_BOOTSTRAP) is not launched here")
    assert kafka.version == kafka_local.KAFKA_VERSION
    if kafka_local.major_version(kafka.version) < 4:
        pytest.skip(f"{kafka_local.VERSION_VARIABLE} selects Kafka {kafka.version} for this run")
    assert (kafka.data_dir / "log4j2.properties").is_file()
    out = (kafka.data_dir / "broker.out").read_text(errors="replace")
    assert "No configuration found" not in out and "Reconfiguration failed" not in out, out[-2000:]
    assert "Kafka Server started" in kafka.log_path.read_text(errors="replace")  # log4j2 writes our log file


@pytest.mark.kafka
def test_kafka_3_9_is_still_selectable_and_runs():
    """The bridge release, selected by version (the variable picks it for a whole run)."""
    with LocalKafka(version="3.9.1") as broker:
        assert (broker.data_dir / "log4j.properties").is_file()
        _round_trip_once(broker)
        assert "Kafka Server started" in broker.log_path.read_text(errors="replace")


def test_an_unknown_kafka_version_is_one_clear_error():
    with pytest.raises(UserError, match="CROSSING_MONITOR_KAFKA_VERSION='5.0': use an Apache Kafka release"):
        LocalKafka(version="5.0")
