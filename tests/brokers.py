"""A broker of a test's own that can be killed outright and brought back on the same data and ports."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from workers import PARTITIONS

from crossing_monitor.kafka.broker import LocalKafka


class KillableKafka:
    """A LocalKafka on `data_dir` whose `kill()` is kill -9 of its process group and whose
    `restart()` starts it again on the same directory and the same two ports (the clients'
    bootstrap address stays valid, as with a real broker coming back)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.broker = LocalKafka(data_dir=data_dir).start()
        self.bootstrap = self.broker.bootstrap
        self.down_at: float | None = None

    def kill(self) -> None:
        """SIGKILL to the broker's process group: no flush, no goodbye to its clients."""
        proc = self.broker.proc
        assert proc is not None and proc.poll() is None, "the broker is not running"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        self.broker.stop()  # reaps nothing more; closes its log file
        self.down_at = time.monotonic()

    def restart(self) -> None:
        old = self.broker
        self.broker = LocalKafka(old.port, old.controller_port, data_dir=self.data_dir).start()
        assert self.broker.bootstrap == self.bootstrap

    def stop(self) -> None:
        self.broker.stop()


async def _end_total(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:  # a topic made after this consumer's first look at the cluster
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        return sum((await consumer.end_offsets([TopicPartition(topic, p) for p in parts])).values())
    finally:
        await consumer.stop()


def end_total(bootstrap: str, topic: str) -> int:
    """How many messages the topic holds now (0 while it does not exist or the broker is away)."""
    try:
        return asyncio.run(_end_total(bootstrap, topic))
    except Exception:
        return 0


def cli(*args: str, **kw) -> subprocess.Popen:
    """`crossing-monitor ARGS` as a child process, with the partition count the test workers use."""
    env = dict(os.environ, CROSSING_MONITOR_PARTITIONS=str(PARTITIONS))
    return subprocess.Popen([sys.executable, "-m", "crossing_monitor", *args], env=env, **kw)
