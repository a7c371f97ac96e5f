"""The Faust app: one agent folds sensor events into per-partition state with the metric core.

Thin by design: judging and folding events is `crossing_monitor.core.monitor.Monitor`'s job (the same
code `analyze` runs); this module only moves bytes between Kafka, the core and HTTP.
Run it with `crossing-monitor worker` or `faust -A streams.app worker`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import orjson
from faust.types import TP

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.events import Rejection
from crossing_monitor.kafka.security import KafkaSecurity
from streams.settings import Settings
from streams.state import PartitionState, snapshot_key
from streams.transport import Batch, BatchConsumer, BatchTransport

log = logging.getLogger("crossing_monitor.worker")

settings = Settings.from_env()
catalogue = load_catalogue(settings.catalogue)
security = KafkaSecurity.from_env()

MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024
SEND_TIMEOUT = 30.0  # seconds to wait for Kafka to acknowledge a checkpoint


class App(faust.App):
    """A Faust app whose Kafka consumer hands the source topic on in batches (`streams.transport`)."""

    def _new_transport(self) -> BatchTransport:
        return BatchTransport(self.conf.broker_consumer, self)


app = App(
    settings.app_id,
    broker=f"kafka://{settings.bootstrap}",
    broker_credentials=security.faust_credentials(),  # TLS/SASL from CROSSING_MONITOR_KAFKA_* (None: plaintext)
    store="memory://",
    topic_partitions=settings.partitions,
    web_host=settings.web_host,
    web_bind=settings.web_host,
    web_port=settings.web_port,
    datadir=settings.data_dir,
    consumer_auto_offset_reset="earliest",
    broker_max_poll_records=5000,  # records per fetch, all partitions together
    consumer_max_fetch_size=4 * 1024 * 1024,
    producer_max_request_size=MAX_SNAPSHOT_BYTES,
    producer_acks=-1,
    broker_commit_interval=1.0,
    broker_session_timeout=10.0,  # a killed worker's partitions move on after 10 s, not 60
    broker_heartbeat_interval=1.0,
    # Standbys of the in-memory store can miss the newest checkpoint when they turn active; a new owner
    # reads the (compacted, one message per partition) changelog from the start instead.
    table_standby_replicas=0,
    web_in_thread=False,
    stream_wait_empty=False,  # nothing is acked through Faust: the checkpoint is the commit
)

events_topic = app.topic(
    settings.topic,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
)
# Subscribed, so that the group assigns its partitions (and the checkpoints table's changelog
# partitions with them); its records reach the `fold` agent through `batches`, not one by one.
app.topics.add(events_topic)
batches = app.channel(maxsize=4)
dlq_topic = app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="raw", partitions=1)

# One compressed checkpoint per source partition, in a changelog-backed Faust table.
checkpoints = app.Table(
    "checkpoints",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    value_type=bytes,
    extra_topic_configs={"max.message.bytes": str(MAX_SNAPSHOT_BYTES), "cleanup.policy": "compact"},
)


class Processor:
    """Per-partition state of this worker, fed by the agent and read by the web views."""

    def __init__(self) -> None:
        self.partitions: dict[int, PartitionState] = {}
        self.events_processed = 0
        self.events_skipped = 0
        self.batches_folded = 0
        self.offsets_missing = 0
        self.reads_again = 0
        self.checkpoints_written = 0
        self.last_checkpoint_bytes = 0

    def state_for(self, partition: int) -> PartitionState:
        found = self.partitions.get(partition)
        if found is None:
            snapshot = checkpoints.data.get(snapshot_key(partition))
            found = self.partitions[partition] = PartitionState.restore(partition, catalogue, snapshot)
            if snapshot is not None:
                log.info(
                    "partition %d: restored checkpoint at offset %d (%d ports)",
                    partition,
                    found.restored_offset,
                    len(found.monitor.ports),
                )
        return found

    def state_of(self, batch: Batch) -> PartitionState | None:
        """The state a batch folds into, or None when the batch is to be dropped (it comes again)."""
        if batch.generation != app.consumer_generation_id:
            return None  # fetched before a rebalance, which ends with a seek to the committed offsets
        part = self.partitions.get(batch.partition)
        if part is None:
            if app.rebalancing:
                return None  # revoked, or not restored yet: its owner reads it from the committed offset
            part = self.state_for(batch.partition)
        return part

    def fold(self, part: PartitionState, batch: Batch) -> None:
        """Fold a batch of one partition's records in; the checkpoint timer saves and commits them.

        Records at offsets the state already holds (a restored checkpoint, a redelivery) are skipped,
        so the committed offset may lag the checkpoint without anything being counted twice. The
        agent has made sure the batch does not start past the state (see `fold` below).
        """
        process = part.monitor.process
        next_offset = part.next_offset
        folded = 0
        for record in batch.records:
            offset = record.offset
            if offset < next_offset:
                self.events_skipped += 1
                continue
            if offset > next_offset:
                self.offsets_missing += offset - next_offset
                log.warning(
                    "partition %d: no records at offsets %d-%d; going on", part.partition, next_offset, offset - 1
                )
            raw = record.value if record.value is not None else b""
            result = process(raw)
            if type(result) is Rejection and result.reason != "duplicate":
                part.dead_letters.append(dead_letter(part.partition, offset, raw, result))
            next_offset = offset + 1
            folded += 1
        part.next_offset = next_offset
        part.unsaved += folded
        self.batches_folded += 1
        self.events_processed += folded

    def checkpoint(self, part: PartitionState) -> list[asyncio.Future]:
        """Send the partition's dead letters and snapshot (the producer keeps their order); the
        futures resolve once Kafka has them."""
        if not part.unsaved:
            return []
        sent = [dlq_topic.send_soon(key=key, value=value) for key, value in part.dead_letters]
        part.dead_letters.clear()
        blob = part.snapshot()
        key = snapshot_key(part.partition)
        sent.append(checkpoints.send_changelog(part.partition, key, blob))
        checkpoints.data[key] = blob
        part.unsaved = 0
        part.checkpoint_offset = part.next_offset
        self.checkpoints_written += 1
        self.last_checkpoint_bytes = len(blob)
        return sent

    async def checkpoint_all(self, owned: set[int] | None = None) -> None:
        """Checkpoint every partition (of `owned`, when given) and wait until Kafka has the
        checkpoints; only then do they count as durable, and only durable offsets are committed."""
        sent = {}
        for p, part in list(self.partitions.items()):
            if owned is None or p in owned:
                futures = self.checkpoint(part)
                if futures:
                    sent[p] = (part, part.checkpoint_offset, futures)
        for p, (part, offset, futures) in sent.items():
            try:
                results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), SEND_TIMEOUT)
            except TimeoutError:
                log.warning("partition %d: checkpoint at %d not acknowledged within %.0f s", p, offset, SEND_TIMEOUT)
                continue
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                log.warning("partition %d: checkpoint at %d not written (%s)", p, offset, failed[0])
                continue
            part.durable_offset = max(part.durable_offset, offset)

    def uncommitted(self) -> dict[int, int]:
        """{partition: offset} of durable checkpoints not committed yet."""
        return {
            p: part.durable_offset for p, part in self.partitions.items() if part.durable_offset > part.committed_offset
        }

    def committed(self, offsets: dict[int, int]) -> None:
        for p, offset in offsets.items():
            part = self.partitions.get(p)
            if part is not None:
                part.committed_offset = max(part.committed_offset, offset)

    def forget(self, partitions: set[int]) -> None:
        """After a rebalance, state is rebuilt from the checkpoints of what this worker owns."""
        for p in partitions:
            self.partitions.pop(p, None)

    def port_metrics(self, slug: str):
        for part in self.partitions.values():
            found = part.monitor.ports.get(slug)
            if found is not None:
                return found
        return None

    def rejected(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for part in self.partitions.values():
            for reason, n in part.monitor.rejected.items():
                total[reason] = total.get(reason, 0) + n
        return total


def dead_letter(partition: int, offset: int, raw: bytes, rejection: Rejection) -> tuple[bytes, bytes]:
    """(key, value) of the dead letter for a rejected record: reason, detail and the payload as sent."""
    letter = {
        "reason": rejection.reason,
        "detail": rejection.detail,
        "topic": settings.topic,
        "partition": partition,
        "offset": offset,
        "payload": raw.decode("utf-8", errors="replace"),
    }
    return f"{settings.topic}/{partition}/{offset}".encode(), orjson.dumps(letter)


processor = Processor()


async def hand_on(batch: Batch) -> None:
    """Called by the consumer for every fetched batch of the source topic."""
    await batches.put(batch)


BatchConsumer.batch_topics = frozenset({settings.topic})
BatchConsumer.on_batch = hand_on


@app.agent(batches)
async def fold(stream: faust.StreamT) -> None:
    """Every sensor event, in partition order, into the metric core, a fetched batch at a time."""
    async for batch in stream:
        part = processor.state_of(batch)
        if part is None:
            continue
        first = batch.records[0].offset
        if first > part.next_offset and not await read_past(part, first):
            continue
        processor.fold(part, batch)
        await asyncio.sleep(0)  # let the consumer ask for the next batch while this one is folded


async def read_past(part: PartitionState, first: int) -> bool:
    """A batch starts at `first`, past the state's offset. True when the records in between no
    longer exist (deleted by retention: the state goes on from the earliest offset); else seek back
    so that they are read, and False (the batch is dropped; it comes again after them).

    It should not happen: the consumer puts back what it cannot hand on, and every rebalance ends
    with a seek to the restored offsets. This is the safety net: records deleted by retention before
    they were folded in, or a batch dropped after a rebalance that a later batch overtook.
    """
    tp = TP(settings.topic, part.partition)
    try:
        earliest = (await app.consumer.earliest_offsets(tp)).get(tp, 0)
    except Exception as exc:  # noqa: BLE001 - rebalancing: read from the state's offset again
        log.info("partition %d: earliest offset unknown (%s)", part.partition, exc)
        earliest = 0
    if processor.partitions.get(part.partition) is not part:
        return False  # a rebalance came in between: the batch comes again
    if earliest > part.next_offset:
        log.warning(
            "partition %d: offsets %d-%d were deleted (retention) before they were folded in; going on from %d",
            part.partition,
            part.next_offset,
            earliest - 1,
            earliest,
        )
        processor.offsets_missing += earliest - part.next_offset
        part.next_offset = earliest
        if first <= earliest:
            return True
    processor.reads_again += 1
    log.info(
        "partition %d: a batch skipped records from offset %d; reading them again", part.partition, part.next_offset
    )
    try:
        await app.consumer.seek_wait({tp: part.next_offset})  # in the consumer's thread
    except Exception as exc:  # noqa: BLE001 - rebalancing: the next owner starts from the committed offset
        log.info("partition %d: seek to %d failed (%s)", part.partition, part.next_offset, exc)
    return False


@app.timer(settings.checkpoint_seconds)
async def checkpoint_timer() -> None:
    """Checkpoint what this worker owns, wait until Kafka has it, then commit the offsets it holds."""
    if app.rebalancing:
        return  # on_revoked checkpoints; a partition may already have a new owner
    generation = app.consumer_generation_id
    await processor.checkpoint_all(owned=set(assigned_partitions()))
    offsets = processor.uncommitted()
    if not offsets or app.rebalancing or app.consumer_generation_id != generation:
        return
    tps = {TP(settings.topic, p): offset for p, offset in offsets.items()}
    if await app.consumer.commit_offsets(tps):
        processor.committed(offsets)


@app.on_partitions_revoked.connect
async def on_revoked(app: faust.App, revoked: set, **kwargs: Any) -> None:
    """Checkpoint before a rebalance, so the next owner starts where this worker stopped."""
    await processor.checkpoint_all()  # the next owner's recovery must read these checkpoints
    processor.forget(set(processor.partitions))


@app.on_before_shutdown.connect
async def on_shutdown(app: faust.App, **kwargs: Any) -> None:
    """A clean stop leaves a checkpoint of everything folded in."""
    await processor.checkpoint_all()


@app.on_partitions_assigned.connect
async def on_assigned(app: faust.App, assigned: set, **kwargs: Any) -> None:
    """Drop whatever was folded in during the rebalance: it is uncommitted and will come again."""
    processor.forget(set(processor.partitions))


@app.on_rebalance_complete.connect
async def on_rebalance_complete(app: faust.App, **kwargs: Any) -> None:
    """Tables are recovered: restore every assigned partition now, so that its figures are served
    even before its next event arrives."""
    offsets = {TP(settings.topic, p): processor.state_for(p).next_offset for p in assigned_partitions()}
    # Faust seeks next to the committed offsets, but only of partitions that have one; start the
    # others at the restored state, whatever was fetched (and put back) during the rebalance.
    try:
        await app.consumer.seek_wait(offsets)
    except Exception as exc:  # noqa: BLE001 - rebalancing again: the next assignment seeks again
        log.info("seek to the restored offsets failed (%s)", exc)


def assigned_partitions() -> list[int]:
    """Source partitions the consumer group gave this worker."""
    try:
        assignment = app.consumer.assignment()
    except Exception:  # noqa: BLE001 - no consumer yet
        return []
    return sorted(tp.partition for tp in assignment if tp.topic == settings.topic)


# The HTTP interface lives in streams.web (views registered on import).
from streams import web  # noqa: E402,F401
