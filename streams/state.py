"""The worker's state for one source partition, and its checkpoints.

Why checkpoints and not a table write per event: the per-port state is a few hundred kilobytes
(ids and vehicles of the last days), so it is kept in memory, folded by the metric core, and
written to the Faust table's changelog as one compressed snapshot per partition every second.
Events are acknowledged only once a snapshot that contains them has been written, so the
committed offset never runs ahead of the state; after a crash the snapshot is restored and the
events after it are consumed again. Events at offsets the snapshot already holds are skipped.
That is at-least-once delivery made exact: nothing is counted twice and nothing is lost.
Should the consumer ever be positioned past the checkpoint (an offset committed by a worker that
died before its checkpoint was flushed), the worker seeks back to the checkpoint's offset.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from crossing_monitor.catalogue import Catalogue
from crossing_monitor.events import REJECT_REASONS
from crossing_monitor.metrics import PortMetrics
from crossing_monitor.monitor import Monitor


@dataclass
class PartitionState:
    """A Monitor for the ports of one partition, and where in the partition it stands."""

    partition: int
    monitor: Monitor
    restored_offset: int = -1  # events below this offset are already in the restored state
    next_offset: int = 0  # the offset after the last event folded in
    pending: list[Any] = field(default_factory=list)  # events folded in, not yet in a snapshot
    dead_letters: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value) to send
    seek_deadline: float | None = None  # while set, messages past next_offset are dropped: a seek is on its way
    last_event_at: float = 0.0  # monotonic time of the last message handled
    last_seek_at: float = 0.0

    def snapshot(self) -> bytes:
        """The compressed checkpoint of this partition (orjson + zlib)."""
        doc = {
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
        for slug, state in doc["ports"].items():
            monitor.ports[slug] = PortMetrics.from_state(state)
        monitor.rejected = {reason: int(doc["rejected"].get(reason, 0)) for reason in REJECT_REASONS}
        return cls(partition, monitor, restored_offset=doc["offset"], next_offset=doc["offset"])


def snapshot_key(partition: int) -> bytes:
    return f"partition-{partition}".encode()
