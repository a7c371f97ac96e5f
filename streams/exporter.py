"""Prometheus metrics (SPEC §3) read from the metric core's state at scrape time.

Nothing is observed per event: every value, the counters and the histogram included, is derived
from the same state `/api/ports` reports, so the two cannot disagree, a replay at 1000× shows
what a live day would, and a restarted worker exports exactly what it exported before. The one
exception is `crossing_events_rejected_total`, which has no port label and would fall when a
rebalance takes partitions away: it counts what this process folded (`RisingCounts`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from crossing_monitor.core.events import DIRECTIONS, EVENT_TYPES, REJECT_REASONS, VEHICLE_CLASSES
from crossing_monitor.core.metrics import INSPECTION_BUCKETS, SECOND, PortMetrics

_BUCKET_LABELS = [str(float(b)) for b in INSPECTION_BUCKETS] + ["+Inf"]


def port_families(ports: list[PortMetrics]) -> list[Metric]:
    """The crossing_* families for these ports."""
    vehicles = CounterMetricFamily(
        "crossing_vehicles", "Crossings (distinct gate.exited events)", labels=["port", "direction", "vehicle_class"]
    )
    events = CounterMetricFamily("crossing_events", "Accepted sensor events by type", labels=["port", "type"])
    throughput = GaugeMetricFamily(
        "crossing_throughput_vehicles_per_hour", "Crossings in the 60 min ending at the watermark", labels=["port"]
    )
    day = GaugeMetricFamily(
        "crossing_day_vehicles", "Crossings on the watermark's day (port time zone)", labels=["port"]
    )
    peak = GaugeMetricFamily("crossing_peak_day_vehicles", "Crossings on the peak day so far", labels=["port"])
    peak_ts = GaugeMetricFamily(
        "crossing_peak_day_timestamp_seconds", "Start of the peak day (Unix time)", labels=["port"]
    )
    histogram = HistogramMetricFamily(
        "crossing_inspection_seconds",
        "Inspection time (gate.exited - gate.entered), by exit",
        labels=["port", "vehicle_class"],
    )
    inspection = GaugeMetricFamily(
        "crossing_inspection_avg_seconds",
        "Average inspection time over the 60 min ending at the watermark",
        labels=["port", "vehicle_class"],
    )
    queue = GaugeMetricFamily(
        "crossing_queue_vehicles", "Vehicles arrived and not yet entered", labels=["port", "direction"]
    )
    wait = GaugeMetricFamily(
        "crossing_wait_avg_seconds",
        "Average wait (gate.entered - vehicle.arrived) over the 60 min ending at the watermark",
        labels=["port"],
    )
    watermark = GaugeMetricFamily(
        "crossing_watermark_timestamp_seconds", "Latest event time seen at the port", labels=["port"]
    )
    cargo = CounterMetricFamily("crossing_cargo_tonnes", "Declared cargo of crossings", labels=["port"])
    for m in ports:
        port = m.port
        for direction in DIRECTIONS:
            for cls in VEHICLE_CLASSES:
                vehicles.add_metric([port, direction, cls], m.crossings_by[direction][cls])
        for etype in EVENT_TYPES:
            events.add_metric([port, etype], m.events_by_type[etype])
        cargo.add_metric([port], m.cargo_g / 1_000_000)
        if m.watermark is None:
            continue
        watermark.add_metric([port], m.watermark / SECOND)
        throughput.add_metric([port], m.throughput_per_hour())
        day.add_metric([port], m.today())
        best = m.peak_day()
        peak.add_metric([port], best[1] if best else 0)
        if best:
            peak_ts.add_metric([port], m.clock.day_start(best[0]))
        for cls, counts in sorted(m.inspection_histogram.items()):
            cumulative, buckets = 0, []
            for label, n in zip(_BUCKET_LABELS, counts, strict=True):
                cumulative += n
                buckets.append((label, cumulative))
            histogram.add_metric([port, cls], buckets, sum_value=m.inspection[cls][0] / SECOND)
        for cls, avg in m.last_hour_inspection().items():
            if avg is not None:
                inspection.add_metric([port, cls], avg)
        for direction, n in m.queue().items():
            queue.add_metric([port, direction], n)
        last_wait = m.last_hour_wait()
        if last_wait is not None:
            wait.add_metric([port], last_wait)
    return [vehicles, events, throughput, day, peak, peak_ts, histogram, inspection, queue, wait, watermark, cargo]


class RisingCounts:
    """Counters built from per-partition figures that never fall while the worker runs (SPEC §3).

    A partition's figure (its rejections by reason, say) covers the partition's whole history and
    moves with the partition, so the sum over the partitions a worker holds falls when a rebalance
    takes some away and jumps when it brings some. Exported instead, per key: what each partition
    state of this process added, from the figure it was restored with to its last figure, kept
    after the state is dropped. The states are held here until one update after they are gone, so
    what a state added just before a rebalance dropped it is read too. That is what this process
    counted: `increase()` summed over the workers counts every rejection once whatever the
    rebalances, a fresh lone worker exports what `analyze` counts, and a restarted worker starts
    again from zero as any process's counter does. A state must be seen by one update while it is
    held: the scrape sees it, unless it is created and dropped between two scrapes (two quick
    rebalances), so the worker should also call `update` just before it drops states. (Records
    folded again after a checkpoint that Kafka never acknowledged count again, as in the state.)
    """

    def __init__(self, figures: Callable[[Any], Mapping[Hashable, float]], arrived: Callable[[Any], Mapping]) -> None:
        self._figures = figures  # a state's figures now
        self._arrived = arrived  # the figures it was restored with
        self._held: dict[int, tuple[Any, dict[Hashable, float]]] = {}  # id(state): (state, figures last read)
        self._totals: dict[Hashable, float] = {}

    def update(self, states: Iterable[Any]) -> dict[Hashable, float]:
        """Read the states held now (and, a last time, those dropped since the last update); the totals."""
        now = {id(state): state for state in states}
        for key, state in now.items():
            if key not in self._held:
                self._held[key] = (state, dict(self._arrived(state)))
        for key, (state, last) in list(self._held.items()):
            figures = dict(self._figures(state))
            for name, value in figures.items():
                rise = value - last.get(name, 0)
                self._totals[name] = self._totals.get(name, 0) + (rise if rise > 0 else 0)
            if key in now:
                self._held[key] = (state, figures)
            else:
                del self._held[key]  # dropped: what it added stays in the totals
        return dict(self._totals)


class WorkerCollector:
    """Collector for one worker: its ports, its rejected counts and its own health."""

    def __init__(self, processor: Any, app: Any, settings: Any) -> None:
        self.processor = processor
        self.app = app
        self.settings = settings
        self.rejected = RisingCounts(lambda part: part.monitor.rejected, lambda part: part.restored_rejected)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        processor = self.processor
        parts = list(processor.partitions.values())
        yield from port_families([m for part in parts for m in part.monitor.ports.values()])
        rejected = CounterMetricFamily("crossing_events_rejected", "Rejected inputs by reason", labels=["reason"])
        totals = self.rejected.update(parts)
        for reason in REJECT_REASONS:
            rejected.add_metric([reason], totals.get(reason, 0))
        yield rejected
        processed = CounterMetricFamily(
            "crossing_worker_events_processed", "Messages folded in by this worker since it started"
        )
        processed.add_metric([], processor.events_processed)
        yield processed
        missing = CounterMetricFamily(
            "crossing_worker_offsets_missing",
            "Source offsets never folded in because the records no longer existed (deleted by retention)",
        )
        missing.add_metric([], processor.offsets_missing)
        yield missing
        again = CounterMetricFamily(
            "crossing_worker_reads_again",
            "Times a partition was read again from its state's offset (a batch skipped records)",
        )
        again.add_metric([], processor.reads_again)
        yield again
        assigned = GaugeMetricFamily("crossing_worker_partitions", "Source partitions this worker holds state for")
        assigned.add_metric([], len(parts))
        yield assigned
        lag = GaugeMetricFamily(
            "crossing_worker_consumer_lag_messages", "Messages in the partition not yet folded in", labels=["partition"]
        )
        consumer = getattr(self.app, "_consumer", None)
        for part in parts:
            try:
                from faust.types import TP

                highwater = consumer.highwater(TP(self.settings.topic, part.partition)) if consumer else None
            except Exception:  # noqa: BLE001 - no highwater known yet
                highwater = None
            if highwater is not None and highwater >= 0:
                lag.add_metric([str(part.partition)], max(0, highwater - part.next_offset))
        yield lag
        pending = GaugeMetricFamily("crossing_worker_pending_events", "Events folded in but not yet in a checkpoint")
        pending.add_metric([], sum(p.unsaved for p in parts))
        yield pending
        size = GaugeMetricFamily("crossing_worker_checkpoint_bytes", "Size of the last checkpoint written")
        size.add_metric([], processor.last_checkpoint_bytes)
        yield size
        age = GaugeMetricFamily(
            "crossing_worker_checkpoint_age_seconds",
            "Age of the oldest event folded in but not yet in a checkpoint Kafka acknowledged (0: none)",
        )
        age.add_metric([], processor.checkpoint_age())
        yield age
        reseeks = CounterMetricFamily(
            "crossing_worker_reseeks",
            "Times a partition behind its end offset made no progress and was sought again",
        )
        reseeks.add_metric([], processor.reseeks)
        yield reseeks
