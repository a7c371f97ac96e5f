"""Real workers and real Kafka traffic for integration tests: start, feed, query, kill."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson

from crossing_monitor.kafka.broker import free_port

__all__ = ["free_port"]

PARTITIONS = 8

# log lines that tell a worker's group membership, recovery and trouble (WorkerProcess.story)
STORY = re.compile(
    r"Joined group|Revoking|Setting newly assigned|Recovery\]: (?:Recovery complete|Restore complete|Worker ready"
    r"|Highwater|Remaining|Resuming|Restoring)|restored checkpoint|rebalanc|Heartbeat|WARNING|ERROR|Traceback"
    r"|no progress|Signal received",
    re.I,
)


def key_of(line: bytes) -> bytes | None:
    """The message key a sensor would use: its port; None for a line that is not an event."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    port = obj.get("port") if isinstance(obj, dict) else None
    return port.encode() if isinstance(port, str) else None


async def _produce(bootstrap: str, topic: str, lines: Iterable[bytes]) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=1 << 20, acks="all", enable_idempotence=True
    )
    await producer.start()
    n = 0
    try:
        for line in lines:
            await producer.send(topic, line, key=key_of(line))
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


def produce(bootstrap: str, topic: str, lines: Iterable[bytes]) -> int:
    """Send lines in order, keyed by port (idempotent producer: no duplicates from retries)."""
    return asyncio.run(_produce(bootstrap, topic, lines))


async def _consume_all(bootstrap: str, topic: str) -> list[Any]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    out = []
    try:
        while batch := await consumer.getmany(timeout_ms=3000, max_records=10000):
            for messages in batch.values():
                out.extend(messages)
    finally:
        await consumer.stop()
    return out


def consume_all(bootstrap: str, topic: str) -> list[Any]:
    """Every message of a topic, from the beginning to where it ends now."""
    return asyncio.run(_consume_all(bootstrap, topic))


async def _committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in found.items() if tp.topic == topic and meta.offset >= 0}


def committed_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """{partition: offset} the worker group of `topic` has committed for it."""
    return asyncio.run(_committed_offsets(bootstrap, f"crossing-monitor-{topic}", topic))


def checkpoint_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """{partition: next offset} of the newest checkpoint of each partition, read from the changelog."""
    import zlib

    latest: dict[bytes, bytes] = {}
    for message in consume_all(bootstrap, f"crossing-monitor-{topic}-checkpoints-changelog"):
        latest[message.key] = message.value
    return {doc["partition"]: doc["offset"] for doc in (orjson.loads(zlib.decompress(v)) for v in latest.values() if v)}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {str(last)[:500]}")


class WorkerProcess:
    """`crossing-monitor worker` as a child process of the test, on loopback."""

    started: list[WorkerProcess] = []  # every worker of the session, for failure reports (conftest)

    def __init__(
        self, bootstrap: str, topic: str, workdir: Path, name: str = "w", env: dict[str, str] | None = None
    ) -> None:
        # checkpoints every second or two (the tests wait for commits); `env` overrides
        self.env = {"CROSSING_MONITOR_CHECKPOINT_MAX_AGE": "1"} | (env or {})
        self.bootstrap = bootstrap
        self.topic = topic
        self.port = free_port()
        self.data_dir = workdir / f"{name}-data"
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> WorkerProcess:
        """Start the worker; with `wait`, return once its /healthz answers (Faust serves it only after the
        worker's first recovery)."""
        env = dict(os.environ, CROSSING_MONITOR_PARTITIONS=str(PARTITIONS)) | self.env
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "crossing_monitor",
                "worker",
                "--bootstrap",
                self.bootstrap,
                "--topic",
                self.topic,
                "--web-port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--loglevel",
                "info",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        WorkerProcess.started.append(self)
        if wait:
            wait_until(self.healthy, 90, f"worker on port {self.port} to answer (log: {self.log_path})")
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}: {self.log_tail()}")
        return httpx.get(self.url + "/healthz", timeout=2).status_code == 200

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=10).text

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def story(self, limit: int = 120) -> str:
        """The log's lines about membership, recovery, restores and trouble: what a failed test needs
        to tell a stuck rebalance from a slow fold (the whole log is in the test's tmp_path)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        picked = [line[:200] for line in lines if STORY.search(line)]
        return "\n".join(picked[-limit:])

    def kill(self) -> None:
        """kill -9 of the whole process group: no goodbye, no final checkpoint."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()


def _get_raw(self: WorkerProcess, path: str) -> httpx.Response:
    return httpx.get(self.url + path, timeout=10)


WorkerProcess.get_raw = _get_raw  # type: ignore[attr-defined]


def report_diff(got: dict, expected: dict) -> list[str]:
    """The figures that differ, for a failure message that says what went wrong."""
    out = (
        [f"rejected {got.get('rejected')} != {expected['rejected']}"]
        if got.get("rejected") != expected["rejected"]
        else []
    )
    for port, report in expected["ports"].items():
        mine = got.get("ports", {}).get(port)
        if mine is None:
            out.append(f"{port} missing")
            continue
        out += [
            f"{port}.{k}: {str(mine.get(k))[:120]} != {str(v)[:120]}" for k, v in report.items() if mine.get(k) != v
        ]
    return out


# Sampled when each quarter hour closes, so they depend on the order events arrived in (a forwarded,
# misrouted event is folded later than its log line): the one part of the report live and analyze may
# not share. Every other figure must be equal.
ORDER_DEPENDENT_KEYS = ("trend_samples",)


def port_without_order_dependent(port: dict) -> dict:
    """One port's object with its order-dependent samples left out."""
    return {k: v for k, v in port.items() if k not in ORDER_DEPENDENT_KEYS}


def without_order_dependent(report: dict) -> dict:
    """The report with each port's order-dependent samples left out."""
    ports = {slug: port_without_order_dependent(port) for slug, port in report.get("ports", {}).items()}
    return {**report, "ports": ports}


def api_equals(worker: WorkerProcess, expected: dict):
    """A wait_until predicate: the worker's /api/ports equals `expected` (else what differs), all but the
    order-dependent samples."""
    wanted = without_order_dependent(expected)

    def check():
        answer = worker.get("/api/ports")
        got = without_order_dependent(answer)
        return answer if got == wanted else Differs(report_diff(got, wanted))

    return check


class Differs(list):
    """A falsy answer to wait_until that still shows the difference when it times out."""

    def __bool__(self) -> bool:
        return False
