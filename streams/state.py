"""The worker's state for one source partition, and its checkpoints.

Why checkpoints and not a table write per event: the per-port state is a few hundred kilobytes
(ids and vehicles of the last days), so it is kept in memory, folded by the metric core, and
written to the Faust table's changelog as one compressed snapshot per partition, once enough
events or time have gone by (`streams.processor` decides when, and what counts as durable).
The source offset is committed only once Kafka has acknowledged a snapshot that holds it, so
the committed offset never runs ahead of the state; after a crash or a rebalance the snapshot is
restored, the consumer starts at the restored (or the earlier committed) offset, and records at
offsets the snapshot already holds are skipped. That is at-least-once delivery made exact:
nothing is counted twice and nothing is lost (but what retention deleted before it was read).
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field

import orjson

from crossing_monitor.core.catalogue import Catalogue
from crossing_monitor.core.events import REJECT_REASONS
from crossing_monitor.core.metrics import STATE_VERSION
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.logs.native import NativeMonitor, new_monitor

log = logging.getLogger("crossing_monitor.worker")

# The snapshot document's format, the core's state version (the document changes with it). A snapshot
# of another version (or one the core cannot read: `PortMetrics.from_state` raising) is not restored:
# the partition is rebuilt from the source topic, which holds every event, so an upgrade that changes
# the state costs one catch-up instead of a crash loop.
SNAPSHOT_VERSION = STATE_VERSION


@dataclass
class PartitionState:
    """A Monitor for the ports of one partition, and where in the partition it stands."""

    partition: int
    monitor: Monitor | NativeMonitor  # the compiled fold's when it is installed (crossing_monitor.logs.native)
    restored_offset: int = -1  # events below this offset are already in the restored state
    next_offset: int = 0  # the offset after the last event folded in
    unsaved: int = 0  # events folded in since the last checkpoint
    checkpoint_offset: int = 0  # next_offset of the last checkpoint sent
    durable_offset: int = 0  # next_offset of the last checkpoint Kafka acknowledged
    committed_offset: int = 0  # the source offset this worker last committed (never past durable_offset)
    # {source offset: (key, value)} of dead letters Kafka has not acknowledged yet
    dead_letters: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    # {source offset: (partition, payload)} of misrouted events not yet acknowledged in their port's partition
    forwards: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    # rejections by reason in the state this worker restored: where its own count starts (streams.exporter)
    restored_rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))
    unsaved_since: float = 0.0  # monotonic time of the oldest event folded in since the last checkpoint
    dirty_since: float | None = None  # monotonic time of the oldest event not in an acknowledged checkpoint
    # stall watch (Processor.watch_stalls): the offset last seen moving, when, and how long to wait next
    progress_offset: int = -1
    progress_at: float = 0.0
    stall_wait: float = 0.0
    # (next_offset, first offset) of a batch that started past the state and made it seek back once:
    # the same batch start seen again from there means the offsets in between hold no record
    looked_past: tuple[int, int] | None = None

    def snapshot(self) -> bytes:
        """The compressed checkpoint of this partition (orjson + zlib)."""
        return compress_snapshot(self.snapshot_json())

    def snapshot_json(self) -> bytes:
        """The checkpoint's document, not compressed yet: the state as it is now, in bytes of its own
        (folding on does not change them), so that the compression can run off the event loop."""
        doc = {
            "version": SNAPSHOT_VERSION,
            "partition": self.partition,
            "offset": self.next_offset,
            "ports": self.monitor.port_states(),
            "rejected": self.monitor.rejected,
        }
        return orjson.dumps(doc)

    @classmethod
    def restore(cls, partition: int, catalogue: Catalogue, snapshot: bytes | None) -> PartitionState:
        monitor = new_monitor(catalogue)
        if snapshot is None:
            return cls(partition, monitor)
        try:
            doc = orjson.loads(zlib.decompress(snapshot))
            version = doc.get("version") if isinstance(doc, dict) else None
            if version != SNAPSHOT_VERSION:
                raise ValueError(f"snapshot version {version!r}, this worker reads {SNAPSHOT_VERSION}")
            for slug, state in doc["ports"].items():
                monitor.load_port(slug, state)
            monitor.rejected = {reason: int(doc["rejected"].get(reason, 0)) for reason in REJECT_REASONS}
            offset = int(doc["offset"])
        except Exception as exc:  # noqa: BLE001 - any unreadable snapshot: rebuild, never crash-loop
            log.warning("partition %d: checkpoint not restored (%s); rebuilding it from the topic", partition, exc)
            # committed_offset -1: the rebuilt state's offset is committed at the next tick
            return cls(partition, new_monitor(catalogue), committed_offset=-1)
        return cls(
            partition,
            monitor,
            restored_offset=offset,
            next_offset=offset,
            checkpoint_offset=offset,
            durable_offset=offset,
            committed_offset=-1,  # unknown: the restored offset is committed at the next tick
            restored_rejected=dict(monitor.rejected),
        )


def compress_snapshot(doc: bytes) -> bytes:
    """A snapshot document as a checkpoint stores it (zlib releases the GIL: it may run in a thread)."""
    return zlib.compress(doc, 1)


def snapshot_key(partition: int) -> bytes:
    return f"partition-{partition}".encode()
