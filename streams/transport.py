"""Faust's Kafka transport, with one change: the source topic's records are handed on in batches.

Why: Faust passes every message through its conductor to a stream and waits on each one with two
asyncio tasks (`Consumer._drain_messages`), which held the worker near 5,000 events/s whatever the
agent did. Here, the records of the source topic that one fetch returns for a partition go on as
one `Batch`; every other topic (the checkpoints' changelog during recovery) takes Faust's usual
path, message by message. Source records are never acked through Faust: the worker commits their
offsets itself, and only up to a checkpoint that is already written (see `streams.state`), so the
position a new owner starts from is never past the state it restores.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import monotonic
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.processor import Batch
from streams.rawrecords import hand_out_raw
from streams.undecodable import skip_undecodable

__all__ = ["Batch", "BatchConsumer", "BatchHandoff", "BatchTransport", "SkippedBatches"]

log = logging.getLogger("crossing_monitor.worker")


class SkippedBatches:
    """Record batches this worker's consumer could not decode and read past (`streams.undecodable`):
    logged once each, counted for /metrics, the last few listed on /healthz. Called from the
    consumer's thread; the GIL makes the count and the bounded list safe to read from the web's."""

    RECENT = 10

    def __init__(self) -> None:
        self.count = 0
        self.records = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=self.RECENT)

    def __call__(self, tp: Any, first: int, last: int, error: Exception) -> None:
        self.count += 1
        self.records += max(0, last - first + 1)
        self.recent.append(
            {
                "topic": tp.topic,
                "partition": tp.partition,
                "first_offset": first,
                "last_offset": last,
                "error": f"{type(error).__name__}: {error}",
                "at": time.time(),
            }
        )
        log.error(
            "%s/%d: record batch at offsets %d-%d cannot be decoded (%s: %s); skipped",
            tp.topic,
            tp.partition,
            first,
            last,
            type(error).__name__,
            error,
        )


@dataclass(frozen=True)
class BatchHandoff:
    """Where one app's consumer hands its source records on: the topics, and the coroutine that
    takes a batch (it may wait, e.g. on a full channel; the consumer then fetches no more)."""

    topics: frozenset[str]
    on_batch: Callable[[Batch], Awaitable[None]]


# How long the broker may hold a fetch for partitions with nothing new, unless the app's settings say
# otherwise (`Settings.fetch_max_wait_ms`). Faust fixes 1,500 ms; while such a fetch is open, aiokafka
# sends no other fetch to that broker, so a partition whose buffered records were just consumed waits up
# to that long for its next batch, stalling a catch-up. Short trades idle polling (10 ms: an idle worker
# asks about 100 times a second) against catch-up speed.
FETCH_MAX_WAIT_MS = 10


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with a short fetch wait (see FETCH_MAX_WAIT_MS), reading only the
    committed records of transactional producers (aborted ones are never counted, and an open
    transaction's records wait until it commits), and reading past a record batch it cannot decode
    instead of failing on it for ever (see `streams.undecodable`); the hand-off's records are handed out
    as aiokafka decoded them (see `streams.rawrecords`)."""

    _stop_skipping: Callable[[], None] | None = None
    _stop_raw: Callable[[], None] | None = None

    async def on_start(self) -> None:
        skipped: SkippedBatches = self.transport.skipped

        def on_skip(tp: Any, first: int, last: int, error: Exception) -> None:
            consumer = self._consumer
            if consumer is not None and tp in consumer.assignment():  # this consumer's, not another app's
                skipped(tp, first, last, error)

        self._stop_skipping = skip_undecodable(on_skip)
        handoff: BatchHandoff | None = self.transport.handoff
        if handoff is not None:  # the hand-off's records need no ConsumerRecord (`streams.rawrecords`)
            self._stop_raw = hand_out_raw(handoff.topics)
        await super().on_start()

    async def on_thread_stop(self) -> None:
        try:
            await super().on_thread_stop()
        finally:
            if self._stop_skipping is not None:
                self._stop_skipping()
                self._stop_skipping = None
            if self._stop_raw is not None:
                self._stop_raw()
                self._stop_raw = None

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        settings = getattr(self.app, "settings", None)
        # both are read by AIOKafkaConsumer.start() to build its fetcher
        consumer._fetch_max_wait_ms = getattr(settings, "fetch_max_wait_ms", FETCH_MAX_WAIT_MS)
        consumer._isolation_level = "read_committed"
        return consumer


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer; the records of its transport's hand-off topics go to the hand-off,
    a batch at a time (without a hand-off, every record takes Faust's usual path)."""

    def _new_consumer_thread(self) -> BatchConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # the loop Faust's Fetcher service runs
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        handoff: BatchHandoff | None = self.transport.handoff
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                await self.sleep(0)
                records, active = await self._wait_next_records(1.0)
                if not records or self.should_stop:
                    continue
                generation = self.app.consumer_generation_id
                for tp, batch in records.items():
                    source = handoff is not None and tp.topic in handoff.topics
                    if not (
                        self.flow_active
                        and self.app.consumer_generation_id == generation
                        and (active is None or tp in active or tp in self._buffered_partitions)
                    ):
                        # Paused, or a rebalance began. Faust drops such records and relies on its
                        # seek to the committed offsets; a partition with no commit yet is not sought,
                        # so source records are put back instead: the fetch position returns to them.
                        if source:
                            await self._rewind(tp, batch[0].offset)
                        continue
                    if source:
                        # Faust's livelock check reads this to tell a working stream from a stuck one
                        self.app.monitor.stream_inbound_time[tp] = monotonic()
                        try:
                            await handoff.on_batch(Batch(tp.partition, batch, generation))
                        except asyncio.CancelledError:
                            task = asyncio.current_task()
                            if task is not None and task.cancelling():
                                raise  # this loop is being stopped
                            # A rebalance cleared the full channel this batch waited for: put it back.
                            await self._rewind(tp, batch[0].offset)
                    else:
                        await self._deliver_one_by_one(tp, batch)
        except (*self.consumer_stopped_errors, asyncio.CancelledError):
            if not self.transport.app.should_stop:
                raise

    async def _rewind(self, tp: TP, offset: int) -> None:
        try:
            await self.seek_wait({tp: offset})  # in the consumer's thread (Consumer.seek is not thread-safe)
        except Exception as exc:  # noqa: BLE001 - no longer assigned: its new owner starts from its own offsets
            self.log.info("%s: not read again from %d (%s)", tp, offset, exc)

    async def _deliver_one_by_one(self, tp: TP, batch: list[Any]) -> None:
        """Faust's own path for the topics it manages (table changelogs): read offsets, gaps, callback."""
        get_read_offset = self._read_offset.get
        acks_enabled = self.app.topics.acks_enabled_for(tp.topic)
        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
        for record in batch:
            offset = record.offset
            read_offset = get_read_offset(tp)
            if read_offset is not None and offset < read_offset:
                continue
            if read_offset and offset - read_offset > 1 and acks_enabled:
                await self._add_gap(tp, read_offset + 1, offset)
            await self.wait_first(self.callback(self._to_message(tp, record)), self.suspend_flow.wait())
            self._read_offset[tp] = offset

    async def commit_offsets(self, offsets: dict[TP, int]) -> bool:
        """Commit source offsets the worker has checkpointed (partitions no longer assigned are left out)."""
        if not offsets:
            return False
        return await self._commit_offsets(offsets)


class BatchTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with a `BatchConsumer`, handing on to `handoff` (one per app)."""

    Consumer = BatchConsumer

    def __init__(self, *args: Any, handoff: BatchHandoff | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handoff = handoff
        self.skipped = SkippedBatches()
