"""The Faust app: one agent folds sensor events into per-partition state with the metric core.

Thin by design: judging and folding events is `crossing_monitor.monitor.Monitor`'s job (the same
code `analyze` runs); this module only moves bytes between Kafka, the core and HTTP.
Run it with `crossing-monitor worker` or `faust -A streams.app worker`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
import orjson
from faust.types import TP

from crossing_monitor.catalogue import load_catalogue
from crossing_monitor.events import Rejection
from streams.settings import Settings
from streams.state import PartitionState, snapshot_key

log = logging.getLogger("crossing_monitor.worker")

settings = Settings.from_env()
catalogue = load_catalogue(settings.catalogue)

MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024
SEEK_PATIENCE = 30.0  # seconds to wait for a seek back to deliver the missing offsets, else they do not exist
IDLE_BEFORE_POSITION_CHECK = 2.0

app = faust.App(
    settings.app_id,
    broker=f"kafka://{settings.bootstrap}",
    store="memory://",
    topic_partitions=settings.partitions,
    web_host=settings.web_host,
    web_bind=settings.web_host,
    web_port=settings.web_port,
    datadir=settings.data_dir,
    consumer_auto_offset_reset="earliest",
    producer_max_request_size=MAX_SNAPSHOT_BYTES,
    producer_acks=-1,
    broker_commit_interval=1.0,
    broker_session_timeout=10.0,  # a killed worker's partitions move on after 10 s, not 60
    broker_heartbeat_interval=1.0,
    # Standbys of the in-memory store can miss the newest checkpoint when they turn active; a new owner
    # reads the (compacted, one message per partition) changelog from the start instead.
    table_standby_replicas=0,
    web_in_thread=False,
    # Unacked events are normal here (they wait for the next checkpoint): never wait for them to
    # drain before a rebalance or a shutdown; a checkpoint is written instead.
    stream_wait_empty=False,
)

events_topic = app.topic(
    settings.topic,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
)
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

    def handle(self, event: Any) -> int | None:
        """Fold one Kafka message in; its ack waits for the next checkpoint.

        Returns an offset to seek the partition back to when messages between the checkpoint and
        this one were never delivered, else None.
        """
        message = event.message
        part = self.state_for(message.partition)
        offset = message.offset
        part.last_event_at = now = time.monotonic()
        if offset < part.next_offset:  # already folded in (inside the restored checkpoint, or redelivered)
            self.events_skipped += 1
            event.ack()
            return None
        if offset > part.next_offset and part.next_offset > 0:
            if part.seek_deadline is None:
                log.warning(
                    "partition %d: offsets %d-%d are not in the state; reading them again",
                    message.partition,
                    part.next_offset,
                    offset - 1,
                )
                part.seek_deadline = now + SEEK_PATIENCE
                part.last_seek_at = now
                event.ack()
                return part.next_offset
            if now < part.seek_deadline:
                event.ack()  # comes again after the seek (the timer repeats the seek until it does)
                return None
            log.warning(
                "partition %d: offsets %d-%d do not exist; going on from %d",
                message.partition,
                part.next_offset,
                offset - 1,
                offset,
            )
        part.seek_deadline = None
        raw = message.value if message.value is not None else b""
        result = part.monitor.process(raw)
        if type(result) is Rejection and result.reason != "duplicate":
            key = f"{message.topic}/{message.partition}/{offset}".encode()
            letter = {
                "reason": result.reason,
                "detail": result.detail,
                "topic": message.topic,
                "partition": message.partition,
                "offset": offset,
                "payload": raw.decode("utf-8", errors="replace"),
            }
            part.dead_letters.append((key, orjson.dumps(letter)))
        part.next_offset = offset + 1
        part.pending.append(event)
        self.events_processed += 1
        if len(part.pending) >= settings.checkpoint_events:
            self.checkpoint(part)
        return None

    def checkpoint(self, part: PartitionState) -> None:
        """Send the partition's dead letters and snapshot, then ack the events they contain.

        Faust flushes the producer before it commits offsets, so a committed offset is always
        covered by a snapshot that is already in the changelog.
        """
        if not part.pending:
            return
        for key, value in part.dead_letters:
            dlq_topic.send_soon(key=key, value=value)
        part.dead_letters.clear()
        blob = part.snapshot()
        key = snapshot_key(part.partition)
        checkpoints.send_changelog(part.partition, key, blob)
        checkpoints.data[key] = blob
        for event in part.pending:
            event.ack()
        part.pending.clear()
        self.checkpoints_written += 1
        self.last_checkpoint_bytes = len(blob)

    def checkpoint_all(self) -> None:
        for part in list(self.partitions.values()):
            self.checkpoint(part)

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


processor = Processor()


@app.agent(events_topic)
async def fold(stream: faust.StreamT) -> None:
    """Every sensor event, in partition order, into the metric core."""
    handle = processor.handle
    async for event in stream.noack().events():
        seek_to = handle(event)
        if seek_to is not None:
            await app.consumer.seek(event.message.tp, seek_to)


@app.timer(settings.checkpoint_seconds)
async def checkpoint_timer() -> None:
    processor.checkpoint_all()
    await seek_idle_partitions_back()


async def seek_idle_partitions_back() -> None:
    """Read a gap again: repeat the seek of a partition waiting for missing offsets (a batch fetched
    before a seek can overtake it), and seek back an idle partition whose consumer stands past the
    state's offset (an offset committed by a worker that died before its checkpoint was flushed)."""
    now = time.monotonic()
    for p in assigned_partitions():
        part = processor.partitions.get(p)
        if part is None:
            continue
        tp = TP(settings.topic, p)
        if part.seek_deadline is None:
            if part.pending or now - part.last_event_at < IDLE_BEFORE_POSITION_CHECK:
                continue
            try:
                position = await app.consumer.position(tp)
            except Exception:  # noqa: BLE001 - rebalancing: try again next time
                continue
            if position is None or position <= part.next_offset:
                continue
            log.warning(
                "partition %d: consumer at %d, state at %d; reading the gap again", p, position, part.next_offset
            )
            part.seek_deadline = now + SEEK_PATIENCE
        elif now - part.last_seek_at < 1.0:
            continue
        part.last_seek_at = now
        try:
            await app.consumer.seek(tp, part.next_offset)
        except Exception as exc:  # noqa: BLE001 - rebalancing: the next owner restores from the checkpoint
            log.info("partition %d: seek to %d failed (%s)", p, part.next_offset, exc)


@app.on_partitions_revoked.connect
async def on_revoked(app: faust.App, revoked: set, **kwargs: Any) -> None:
    """Checkpoint before a rebalance, so the next owner starts where this worker stopped."""
    processor.checkpoint_all()
    await app.producer.flush()  # the next owner's recovery must read this checkpoint
    processor.forget(set(processor.partitions))


@app.on_before_shutdown.connect
async def on_shutdown(app: faust.App, **kwargs: Any) -> None:
    """A clean stop leaves a checkpoint of everything folded in (flushed with the producer)."""
    processor.checkpoint_all()


@app.on_partitions_assigned.connect
async def on_assigned(app: faust.App, assigned: set, **kwargs: Any) -> None:
    """Drop whatever was folded in during the rebalance: it is uncommitted and will come again."""
    processor.forget(set(processor.partitions))


@app.on_rebalance_complete.connect
async def on_rebalance_complete(app: faust.App, **kwargs: Any) -> None:
    """Tables are recovered: restore every assigned partition now, so that its figures are served
    even before its next event arrives."""
    for tp in assigned_partitions():
        processor.state_for(tp)


def assigned_partitions() -> list[int]:
    """Source partitions the consumer group gave this worker."""
    try:
        assignment = app.consumer.assignment()
    except Exception:  # noqa: BLE001 - no consumer yet
        return []
    return sorted(tp.partition for tp in assignment if tp.topic == settings.topic)


# The HTTP interface lives in streams.web (views registered on import).
from streams import web  # noqa: E402,F401
