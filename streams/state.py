"""The worker's state for one source partition, and its checkpoints.

Why checkpoints and not a table write per event: the per-port state is a few hundred kilobytes
(ids and vehicles of the last days), so it is kept in memory, folded by the metric core, and
written to the Faust table's changelog as one compressed snapshot per partition every second
(`streams.processor` decides when, and what counts as durable).
The source offset is committed only once Kafka has acknowledged a snapshot that holds it, so
the committed offset never runs ahead of the state; after a crash or a rebalance the snapshot is
restored, the consumer starts at the restored (or the earlier committed) offset, and records at
offsets the snapshot already holds are skipped. That is at-least-once delivery made exact:
nothing is counted twice and nothing is lost (but what retention deleted before it was read).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import orjson

from crossing_monitor.core.catalogue import Catalogue
from crossing_monitor.core.events import REJECT_REASONS
from crossing_monitor.core.metrics import STATE_VERSION, PortMetrics, SnapshotVersionError
from crossing_monitor.core.monitor import Monitor


@dataclass
class PartitionState:
    """A Monitor for the ports of one partition, and where in the partition it stands."""

    partition: int
    monitor: Monitor
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

    def snapshot(self) -> bytes:
        """The compressed checkpoint of this partition (orjson + zlib)."""
        doc = {
            "version": STATE_VERSION,
            "partition": self.partition,
            "offset": self.next_offset,
            "ports": {slug: m.to_state() for slug, m in self.monitor.ports.items()},
            "rejected": self.monitor.rejected,
        }
        return zlib.compress(orjson.dumps(doc), 1)

    @classmethod
    def restore(cls, partition: int, catalogue: Catalogue, snapshot: bytes | None) -> PartitionState:
        monitor = Monitor(catalogue)
        if snapshot is None:
            return cls(partition, monitor)
        doc = orjson.loads(zlib.decompress(snapshot))
        if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
            version = doc.get("version") if isinstance(doc, dict) else None
            raise SnapshotVersionError(f"checkpoint version {version!r} (this worker reads version {STATE_VERSION})")
        for slug, state in doc["ports"].items():
            monitor.ports[slug] = PortMetrics.from_state(state, catalogue.get(slug))
        monitor.rejected = {reason: int(doc["rejected"].get(reason, 0)) for reason in REJECT_REASONS}
        offset = doc["offset"]
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


def snapshot_key(partition: int) -> bytes:
    return f"partition-{partition}".encode()
