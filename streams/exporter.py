"""Prometheus metrics (SPEC §3) read from the metric core's state at scrape time.

Nothing is observed per event: every value, the counters and the histogram included, is derived
from the same state `/api/ports` reports, so the two cannot disagree, a replay at 1000× shows
what a live day would, and a restarted worker exports exactly what it exported before. The one
exception is `crossing_events_rejected_total`, which has no port label and would fall when a
rebalance takes partitions away: it counts what this process folded (`RisingCounts`).

Counters never fall (SPEC §3), though the core retracts a vehicle's inspection time when a late,
earlier gate event changes it. So the core keeps two monotonic histograms beside the exact
averages: `crossing_inspection_seconds` counts every inspection time when it becomes known, and
`crossing_inspection_retracted_seconds` every one that was replaced later. Both only grow; the
exact distribution at any moment is the first minus the second (retractions are rare: a resent
gate event with another time, or an entry camera's event arriving after the exit's).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from crossing_monitor.core.catalogue import Port
from crossing_monitor.core.events import DIRECTIONS, EVENT_TYPES, REJECT_REASONS, VEHICLE_CLASSES
from crossing_monitor.core.metrics import INSPECTION_BUCKETS, SECOND, PortMetrics

_BUCKET_LABELS = [str(float(b)) for b in INSPECTION_BUCKETS] + ["+Inf"]


def _histogram_buckets(counts: list[int]) -> list[tuple[str, float]]:
    cumulative, buckets = 0, []
    for label, n in zip(_BUCKET_LABELS, counts, strict=True):
        cumulative += n
        buckets.append((label, cumulative))
    return buckets


def port_families(ports: list[PortMetrics], catalogue: Mapping[str, Port] | None = None) -> list[Metric]:
    """The crossing_* families for these ports (`crossing_lanes` from the catalogue, when given)."""
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
        "Inspection times (gate.exited - gate.entered) counted, by exit; never decremented: a time a late event "
        "changed is also counted in crossing_inspection_retracted_seconds",
        labels=["port", "vehicle_class"],
    )
    retracted = HistogramMetricFamily(
        "crossing_inspection_retracted_seconds",
        "Inspection times counted and later replaced by a late event (the exact distribution is "
        "crossing_inspection_seconds minus this)",
        labels=["port", "vehicle_class"],
    )
    inspection = GaugeMetricFamily(
        "crossing_inspection_avg_seconds",
        "Average inspection time over the 60 min ending at the watermark",
        labels=["port", "vehicle_class"],
    )
    queue = GaugeMetricFamily(
        "crossing_queue_vehicles", "Vehicles arrived with nothing of a later stage yet", labels=["port", "direction"]
    )
    wait = GaugeMetricFamily(
        "crossing_wait_avg_seconds",
        "Average wait (gate.entered - vehicle.arrived) over the 60 min ending at the watermark",
        labels=["port"],
    )
    wait_booking = GaugeMetricFamily(
        "crossing_wait_booking_avg_seconds",
        "Average wait over the 60 min ending at the watermark, booked or walk-up arrivals",
        labels=["port", "booking"],
    )
    clearance = GaugeMetricFamily(
        "crossing_clearance_avg_seconds",
        "Average clearance time (gate.exited - vehicle.arrived) over the 60 min ending at the watermark",
        labels=["port", "direction", "vehicle_class"],
    )
    scans = CounterMetricFamily("crossing_scans", "Distinct scan.completed events by result", labels=["port", "result"])
    lanes = GaugeMetricFamily("crossing_lanes", "Lanes the catalogue lists", labels=["port", "direction"])
    lanes_in_use = GaugeMetricFamily(
        "crossing_lanes_in_use", "Distinct lanes with a gate.entered in the last hour", labels=["port", "direction"]
    )
    clear = GaugeMetricFamily(
        "crossing_queue_clear_seconds",
        "Time the queue takes to clear at the last hour's entry rate (absent while nobody enters a queue)",
        labels=["port", "direction"],
    )
    clear_more = GaugeMetricFamily(
        "crossing_queue_clear_one_more_lane_seconds",
        "Time the queue would take to clear with one more entry lane open (what-if of the forecast)",
        labels=["port", "direction"],
    )
    predicted = GaugeMetricFamily(
        "crossing_wait_predicted_seconds",
        "Forecast wait of a vehicle joining the queue at the watermark",
        labels=["port", "direction"],
    )
    watermark = GaugeMetricFamily(
        "crossing_watermark_timestamp_seconds", "Event time of the port, confirmed by a second sensor", labels=["port"]
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
        scans.add_metric([port, "clear"], m.scans - m.flagged)
        scans.add_metric([port, "flagged"], m.flagged)
        if catalogue is not None and port in catalogue:
            for direction, n in catalogue[port].lanes.items():
                lanes.add_metric([port, direction], n)
        for cls, h in sorted(m.inspection_observed.items()):
            histogram.add_metric([port, cls], _histogram_buckets(h.counts), sum_value=h.total / SECOND)
        for cls, h in sorted(m.inspection_retracted.items()):
            retracted.add_metric([port, cls], _histogram_buckets(h.counts), sum_value=h.total / SECOND)
        if m.watermark is None:
            continue
        watermark.add_metric([port], m.watermark / SECOND)
        throughput.add_metric([port], m.throughput_per_hour())
        day.add_metric([port], m.today())
        best = m.peak_day()
        peak.add_metric([port], best[1] if best else 0)
        if best:
            peak_ts.add_metric([port], m.clock.day_start(best[0]))
        for cls, avg in m.last_hour_inspection().items():
            if avg is not None:
                inspection.add_metric([port, cls], avg)
        now_queue = m.queue()
        for direction, n in now_queue.items():
            queue.add_metric([port, direction], n)
        last_wait = m.last_hour_wait()
        if last_wait is not None:
            wait.add_metric([port], last_wait)
        for booking, avg in m.last_hour_wait_by_booking().items():
            if avg is not None:
                wait_booking.add_metric([port, booking], avg)
        for direction, by_class in m.last_hour_clearance().items():
            for cls, avg in by_class.items():
                if avg is not None:
                    clearance.add_metric([port, direction, cls], avg)
        for direction, n in m.lanes_in_use().items():
            lanes_in_use.add_metric([port, direction], n)
        for direction, f in m.forecast(now_queue).items():
            if f["clear_seconds"] is not None:
                clear.add_metric([port, direction], f["clear_seconds"])
            if f["clear_seconds_one_more_lane"] is not None:
                clear_more.add_metric([port, direction], f["clear_seconds_one_more_lane"])
            predicted.add_metric([port, direction], f["predicted_wait_seconds"])
    return [
        vehicles, events, throughput, day, peak, peak_ts, histogram, retracted, inspection, queue, wait,
        wait_booking, clearance, scans, lanes, lanes_in_use, clear, clear_more, predicted, watermark, cargo,
    ]  # fmt: skip


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
        catalogue = parts[0].monitor.catalogue if parts else None
        yield from port_families([m for part in parts for m in part.monitor.ports.values()], catalogue)
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
        undecodable = CounterMetricFamily(
            "crossing_worker_batches_undecodable",
            "Record batches the consumer could not decode (codec, CRC, damage) and read past",
        )
        skipped = getattr(getattr(self.app, "transport", None), "skipped", None)
        undecodable.add_metric([], skipped.count if skipped is not None else 0)
        yield undecodable
        forwarded = CounterMetricFamily(
            "crossing_worker_events_forwarded",
            "Events that landed on another partition than their port's and were forwarded to it",
        )
        forwarded.add_metric([], processor.events_forwarded)
        yield forwarded
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
