"""The processor's collaborators (`streams.processor` protocols) on Faust and aiokafka: thin, no logic.

Each adapter turns partition numbers into Faust's topic-partitions and calls one Faust method;
whatever decides something lives in the processor, where a unit test reaches it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.types import TP

from streams.state import snapshot_key


class TableCheckpoints:
    """Snapshots in a changelog-backed Faust table, one key per source partition."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, partition: int) -> bytes | None:
        return self.table.data.get(snapshot_key(partition))

    def put(self, partition: int, blob: bytes) -> Awaitable[Any]:
        """Send the snapshot; it becomes this worker's local copy only once Kafka has it, so a
        partition kept through a rebalance never restores (and commits) a snapshot Kafka lacks."""
        key = snapshot_key(partition)
        sent = self.table.send_changelog(partition, key, blob)

        async def stored() -> Any:
            result = await sent
            self.table.data[key] = blob
            return result

        return stored()


class TopicDeadLetters:
    """The dead-letter topic, through Faust's producer (which keeps the order of sends)."""

    def __init__(self, topic: Any) -> None:
        self.topic = topic

    def send(self, key: bytes, value: bytes) -> Awaitable[Any]:
        return self.topic.send_soon(key=key, value=value)


class TopicForwards:
    """The source topic, for misrouted events: an explicit partition, through Faust's producer."""

    def __init__(self, topic: Any) -> None:
        self.topic = topic

    def send(self, partition: int, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> Awaitable[Any]:
        return self.topic.send_soon(key=key, value=value, partition=partition, headers=headers)


class PortHome:
    """The partition Kafka's default (murmur2) partitioner gives a port's key among the topic's
    partitions, as the consumer's cluster metadata counts them (None until it knows the topic)."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self.app = app
        self.topic = topic
        self._known: dict[tuple[str, int], int] = {}

    def __call__(self, port: str) -> int | None:
        try:
            found = self.app.consumer._thread._ensure_consumer()._client.cluster.partitions_for_topic(self.topic)
        except Exception:  # noqa: BLE001 - no consumer or metadata yet
            return None
        if not found:
            return None
        n = len(found)
        home = self._known.get((port, n))
        if home is None:
            home = self._known[(port, n)] = sorted(found)[(murmur2(port.encode()) & 0x7FFFFFFF) % n]
        return home


END_OFFSET_TIMEOUT = 5.0  # seconds; the stall watch asks again at the next tick


class ConsumerSource:
    """The source topic through the app's consumer; seeks and commits run in the consumer's thread."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self.app = app
        self.topic = topic

    def _tps(self, offsets: Mapping[int, int]) -> dict[TP, int]:
        return {TP(self.topic, p): offset for p, offset in offsets.items()}

    async def earliest(self, partition: int) -> int:
        tp = TP(self.topic, partition)
        return (await self.app.consumer.earliest_offsets(tp)).get(tp, 0)

    async def seek(self, offsets: Mapping[int, int]) -> None:
        await self.app.consumer.seek_wait(self._tps(offsets))

    async def commit(self, offsets: Mapping[int, int]) -> bool:
        return await self.app.consumer.commit_offsets(self._tps(offsets))

    async def end_offset(self, partition: int) -> int | None:
        """The partition's end (the last stable offset: the consumer reads committed records only)."""
        tp = TP(self.topic, partition)
        ends = await asyncio.wait_for(self.app.consumer.highwaters(tp), END_OFFSET_TIMEOUT)
        return ends.get(tp)

    async def reseek(self, partition: int, offset: int) -> None:
        tp = TP(self.topic, partition)
        consumer = self.app.consumer
        consumer.resume_partitions({tp})  # Faust's own pause (recovery): fetched records are not handed on
        await consumer.seek_wait({tp: offset})


class AppGroup:
    """The app's consumer-group membership: generation, rebalancing, the source partitions assigned."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self.app = app
        self.topic = topic

    @property
    def generation(self) -> int:
        return self.app.consumer_generation_id

    @property
    def rebalancing(self) -> bool:
        return self.app.rebalancing

    def assigned(self) -> list[int]:
        """Source partitions the consumer group gave this worker."""
        try:
            assignment = self.app.consumer.assignment()
        except Exception:  # noqa: BLE001 - no consumer yet
            return []
        return sorted(tp.partition for tp in assignment if tp.topic == self.topic)
