"""record → replay → record on a real broker gives back the same messages, bad lines included."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections import defaultdict
from datetime import datetime

import orjson
import pytest
from simhelpers import run_cli
from workers import PARTITIONS, WorkerProcess, api_equals, key_of, wait_until

from crossing_monitor.core.catalogue import load_catalogue
from producers.record import record
from producers.run import Run

pytestmark = pytest.mark.kafka

CAT = load_catalogue()
START = datetime.fromisoformat("2024-05-01T00:00:00+08:00")
BAD = [b"this is not json", b'{"event_id": "x", "port": "khorgos"}', b"[1, 2, 3]"]


def _topic() -> str:
    return f"rr-{uuid.uuid4().hex[:8]}"


def _by_key(lines: list[bytes]) -> dict[str, list[bytes]]:
    """Lines grouped by port, in order: what Kafka keeps in order (one key, one partition)."""
    grouped: dict[str, list[bytes]] = defaultdict(list)
    for line in lines:
        try:
            port = orjson.loads(line).get("port", "?")
        except (orjson.JSONDecodeError, AttributeError):
            port = "?"
        grouped[port].append(line)
    return dict(grouped)


def _read(path) -> list[bytes]:
    """A log's lines: split at newline bytes only, as analyze and replay read it."""
    data = path.read_bytes()
    lines = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).split(b"\n")
    return lines[:-1] if lines[-1] == b"" else lines


def test_simulate_record_replay_record_gives_back_the_same_messages(kafka, tmp_path):
    live, again = _topic(), _topic()
    argv = ["--bootstrap", kafka.bootstrap]
    sim = ["simulate", "--ports", "khorgos,lektse,irkeshtam", "--start", "2024-05-01", "--days", "1"]
    assert run_cli(*sim, "--speed", "max", "--faults", "duplicates", "--topic", live, *argv) == 0
    expected = list(Run(CAT, ["khorgos", "lektse", "irkeshtam"], START, 1.0, faults=_dups()).lines())

    first = tmp_path / "first.jsonl.gz"
    assert run_cli("record", str(first), "--topic", live, *argv) == 0
    recorded = _read(first)
    assert sorted(recorded) == sorted(expected)  # nothing lost, nothing twice
    assert _by_key(recorded) == _by_key(expected)  # and each port in the order it was sent

    with_bad = tmp_path / "with-bad.jsonl"
    with_bad.write_bytes(b"\n".join(recorded + BAD) + b"\n\n")  # a blank line is no message
    assert run_cli("replay", str(with_bad), "--speed", "max", "--topic", again, *argv) == 0
    second = tmp_path / "second.jsonl"
    assert run_cli("record", str(second), "--topic", again, *argv) == 0
    assert sorted(_read(second)) == sorted(recorded + BAD)
    got, want = _by_key(_read(second)), _by_key(recorded + BAD)
    assert sorted(got.pop("?")) == sorted(want.pop("?"))  # no port, no key: any partition
    assert got == want  # a port's events, and a bad line naming a port, keep their order


def _dups():
    from producers.faults import Faults

    return Faults(duplicates=0.01)


def test_replay_at_original_pace_takes_the_time_between_events(kafka, tmp_path):
    import time

    topic = _topic()
    log = tmp_path / "paced.jsonl"
    stamps = ["2024-05-01T10:00:00.000+08:00", "2024-05-01T10:00:10.000+08:00", "2024-05-01T10:00:20.000+08:00"]
    log.write_bytes(b"\n".join(_event(i, ts) for i, ts in enumerate(stamps)) + b"\n")
    started = time.monotonic()
    assert run_cli("replay", str(log), "--speed", "10", "--topic", topic, "--bootstrap", kafka.bootstrap) == 0
    assert 1.9 <= time.monotonic() - started < 8  # 20 s of event time at 10x


def _event(i: int, ts: str) -> bytes:
    return orjson.dumps(
        {"event_id": f"p{i}", "type": "vehicle.arrived", "ts": ts, "port": "lektse", "lane": "in-1",
         "direction": "inbound", "vehicle_id": f"v{i}", "vehicle_class": "car", "sensor_id": "cam"}
    )  # fmt: skip


def test_record_follow_stops_cleanly_with_everything_fetched(kafka, tmp_path):
    topic = _topic()
    out = tmp_path / "follow.jsonl.gz"
    lines = list(Run(CAT, ["lektse"], START, 20.0).lines())

    async def scenario() -> int:
        from producers.publish import Publisher

        stop = asyncio.Event()
        seen = [0]

        def progress(written: int, _total: int | None) -> None:
            seen[0] = written

        from crossing_monitor.kafka.admin import create_topics_async

        await create_topics_async(kafka.bootstrap, {topic: 8})
        recording = asyncio.ensure_future(
            record(kafka.bootstrap, topic, str(out), follow=True, stop=stop, progress=progress)
        )
        async with Publisher(kafka.bootstrap, topic) as publisher:
            for line in lines:
                await publisher.send(b"lektse", line)
        for _ in range(300):  # until the recorder has caught up (it keeps waiting for more), then Ctrl-C
            if seen[0] >= len(lines):
                break
            await asyncio.sleep(0.05)
        assert not recording.done()
        stop.set()
        return await recording

    written = asyncio.run(scenario())
    assert written == len(lines)
    assert _read(out) == lines  # one key: exactly the order sent


def test_record_from_now_skips_what_is_already_there(kafka, tmp_path):
    topic = _topic()
    lines = list(Run(CAT, ["burang"], START, 30.0).lines())

    async def scenario() -> int:
        from producers.publish import Publisher

        async with Publisher(kafka.bootstrap, topic) as publisher:
            for line in lines:
                await publisher.send(b"burang", line)
        return await record(kafka.bootstrap, topic, str(tmp_path / "now.jsonl"), from_now=True)

    assert asyncio.run(scenario()) == 0
    assert _read(tmp_path / "now.jsonl") == []


def test_recording_a_missing_topic_is_one_line(kafka, tmp_path, capsys):
    code = run_cli("record", str(tmp_path / "x.jsonl"), "--topic", "no-such-topic-here", "--bootstrap", kafka.bootstrap)
    assert code == 2
    assert "topic 'no-such-topic-here' does not exist" in capsys.readouterr().err


def test_simulate_at_max_speed_with_several_model_processes_keeps_each_port_in_order(kafka, tmp_path):
    from producers.simulate import publish

    topic = _topic()
    ports = ["khorgos", "alashankou", "irkeshtam", "lektse"]
    run = Run(CAT, ports, START, 2.0, faults=_dups())
    sent = asyncio.run(publish(run, kafka.bootstrap, topic, None, False, processes=3))
    expected = list(Run(CAT, ports, START, 2.0, faults=_dups()).lines())
    assert sent == len(expected)
    out = tmp_path / "many.jsonl"
    assert run_cli("record", str(out), "--topic", topic, "--bootstrap", kafka.bootstrap) == 0
    assert _by_key(_read(out)) == _by_key(expected)


def test_a_history_goes_out_at_once_then_real_time_until_stopped(kafka):
    """What the demo's traffic does: the last hours within a second or so, then paced, until told to stop."""
    import itertools
    import time
    from datetime import timedelta
    from math import inf

    from producers.pacing import Pacer
    from producers.simulate import publish

    topic = _topic()
    now = datetime.now(CAT["irkeshtam"].tz).replace(microsecond=0)
    run = Run(CAT, ["irkeshtam", "khorgos"], now - timedelta(hours=12), days=inf)
    now_ms = int(now.timestamp() * 1000)
    same = Run(CAT, run.ports, run.start, days=inf).events()  # (a run's length changes its draws: the same)
    history = sum(1 for _ in itertools.takewhile(lambda item: item[0] < now_ms, same))

    async def scenario() -> tuple[int, float]:
        stop = asyncio.Event()
        pacer = Pacer(1, int(run.start_s * 1000), history_until_ms=now_ms, history_seconds=1.0)
        task = asyncio.ensure_future(publish(run, kafka.bootstrap, topic, None, False, pacer=pacer, stop=stop))
        while pacer.wall0 is None or time.monotonic() < pacer.wall0 + 3:  # connected, history, 2 s of live
            await asyncio.sleep(0.05)
        stop.set()
        started = time.monotonic()
        sent = await task
        return sent, time.monotonic() - started

    sent, stopping = asyncio.run(scenario())
    assert history <= sent < history + 100  # all of the history, then a few seconds of real time
    assert stopping < 5


async def _send_values(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    """Each value as one message, keyed by its port where it names one (a tombstone: khorgos's key)."""
    from aiokafka import AIOKafkaProducer

    from crossing_monitor.kafka.admin import create_topics_async

    await create_topics_async(bootstrap, {topic: PARTITIONS})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value, key=b"khorgos" if value is None else key_of(value))
        await producer.flush()
    finally:
        await producer.stop()


def test_analyze_of_a_recording_equals_the_worker_with_tombstones_and_multiline_json(kafka, tmp_path):
    from tricky import TRICKY

    from crossing_monitor.core.monitor import Monitor
    from crossing_monitor.logs.analyze import analyze_log

    topic, again = _topic(), _topic()
    simulated = list(Run(CAT, ["lektse", "burang"], START, 2.0).lines())
    values: list[bytes | None] = simulated[:100] + TRICKY + simulated[100:] + TRICKY[:3]
    monitor = Monitor(CAT)
    monitor.process_all(b"" if v is None else v for v in values)  # what the worker folds: a tombstone is b""
    expected = monitor.report()
    assert expected["rejected"]["malformed"] == 10  # nine in TRICKY, then the tombstone again

    asyncio.run(_send_values(kafka.bootstrap, topic, values))
    worker = WorkerProcess(kafka.bootstrap, topic, tmp_path).start()
    try:
        wait_until(api_equals(worker, expected), 120, "the worker to equal analyze of the messages")
    finally:
        worker.stop()
    recording = tmp_path / "tricky.jsonl"
    argv = ["--bootstrap", kafka.bootstrap]
    assert run_cli("record", str(recording), "--topic", topic, *argv) == 0
    assert len(_read(recording)) == len(values)  # one line per message
    assert analyze_log(str(recording), CAT) == expected

    # replayed and recorded again, the recording comes back line for line
    assert run_cli("replay", str(recording), "--speed", "max", "--topic", again, *argv) == 0
    second = tmp_path / "again.jsonl"
    assert run_cli("record", str(second), "--topic", again, *argv) == 0
    assert sorted(_read(second)) == sorted(_read(recording))
    assert analyze_log(str(second), CAT) == expected
