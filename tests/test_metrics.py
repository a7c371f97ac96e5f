"""The metric core (SPEC §2), figure by figure, on logs small enough to know every answer."""

from __future__ import annotations

import orjson
import pytest
from eventlog import crossing, event, lines

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.metrics import PortMetrics
from crossing_monitor.core.monitor import Monitor


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def fold(catalogue, events) -> Monitor:
    monitor = Monitor(catalogue)
    monitor.process_all(lines(events))
    return monitor


def report(catalogue, events, port="khorgos") -> dict:
    return fold(catalogue, events).report()["ports"][port]


def _clock(ts: str, tag: str) -> list[dict]:
    """Two sensors reporting `ts`: they move the watermark there (SPEC 1.1: a second sensor confirms it)."""
    return [event("scan.started", ts, f"clock-{tag}", sensor_id="clock-a"),
            event("scan.started", ts, f"clock-{tag}", sensor_id="clock-b")]


def test_crossings_cargo_and_days_in_beijing_time_around_midnight(catalogue):
    events = [
        # 23:59:59 on the 26th in Beijing, written in UTC
        event("gate.exited", "2023-09-26T15:59:59Z", "a", cargo_tonnes=10.25),
        # 00:00:00 on the 27th in Beijing, written in UTC, +08:00 and -03:00
        event("gate.exited", "2023-09-26T16:00:00Z", "b", cargo_tonnes=1),
        event("gate.exited", "2023-09-27T00:30:00+08:00", "c"),
        event("gate.exited", "2023-09-27T12:59:59.999-03:00", "d", cargo_tonnes=2.5),  # 23:59:59.999 Beijing
        event("gate.exited", "2023-09-27T16:00:00.000+00:00", "e"),  # 00:00 on the 28th
    ]
    r = report(catalogue, events)
    assert r["crossings"] == 5
    assert r["cargo_tonnes"] == 13.75
    assert {d: v["crossings"] for d, v in r["days"].items()} == {"2023-09-26": 1, "2023-09-27": 3, "2023-09-28": 1}
    assert r["days"]["2023-09-27"]["cargo_tonnes"] == 3.5
    assert r["peak_day"] == {"date": "2023-09-27", "crossings": 3}
    assert r["watermark"] == "2023-09-28T00:00:00+08:00"


def test_peak_day_ties_go_to_the_earliest_day(catalogue):
    events = [
        event("gate.exited", "2023-09-28T10:00:00+08:00", "a"),
        event("gate.exited", "2023-09-27T10:00:00+08:00", "b"),
    ]
    assert report(catalogue, events)["peak_day"] == {"date": "2023-09-27", "crossings": 1}


def test_inspection_time_pairs_entry_and_exit_in_either_order(catalogue):
    forward = crossing("v1", None, "2023-09-27T10:00:00+08:00", "2023-09-27T10:20:00+08:00")
    reverse = list(reversed(crossing("v2", None, "2023-09-27T10:00:00+08:00", "2023-09-27T10:40:00+08:00")))
    r = report(catalogue, forward + reverse)
    assert r["avg_inspection_seconds"] == {"all": 1800.0, "truck": 1800.0}
    assert r["days"]["2023-09-27"]["avg_inspection_seconds"] == {"all": 1800.0, "truck": 1800.0}


def test_inspection_time_per_class_and_grouped_by_exit_day(catalogue):
    events = (
        crossing("t1", None, "2023-09-27T23:50:00+08:00", "2023-09-28T00:10:00+08:00")
        + crossing("c1", None, "2023-09-27T10:00:00+08:00", "2023-09-27T10:05:00+08:00", vehicle_class="car")
        + crossing("b1", None, None, "2023-09-27T11:00:00+08:00", vehicle_class="bus")  # no entry: left out
    )
    r = report(catalogue, events)
    assert r["avg_inspection_seconds"] == {"all": 750.0, "truck": 1200.0, "car": 300.0}
    assert r["days"]["2023-09-27"]["avg_inspection_seconds"] == {"all": 300.0, "car": 300.0}
    assert r["days"]["2023-09-28"]["avg_inspection_seconds"] == {"all": 1200.0, "truck": 1200.0}


def test_negative_durations_and_durations_over_48_hours_are_left_out(catalogue):
    events = (
        crossing("neg", None, "2023-09-27T10:00:00+08:00", "2023-09-27T09:59:59+08:00")
        + crossing("long", None, "2023-09-25T09:59:59+08:00", "2023-09-27T10:00:00+08:00")
        + crossing("edge", None, "2023-09-25T10:00:00+08:00", "2023-09-27T10:00:00+08:00")  # exactly 48 h
        + crossing("zero", None, "2023-09-27T10:00:00+08:00", "2023-09-27T10:00:00+08:00")
    )
    r = report(catalogue, events)
    assert r["crossings"] == 4
    assert r["avg_inspection_seconds"] == {"all": 86400.0, "truck": 86400.0}


def test_no_vehicle_means_null_averages(catalogue):
    r = report(catalogue, [event("scan.started", "2023-09-27T10:00:00+08:00")])
    assert r["avg_inspection_seconds"] == {"all": None}
    assert r["last_hour_avg_inspection_seconds"] == {"all": None}
    assert r["avg_wait_seconds"] is None
    assert r["peak_day"] is None
    assert r["crossings"] == 0 and r["throughput_per_hour"] == 0


def test_duplicates_change_nothing_and_are_counted(catalogue):
    first = event("gate.exited", "2023-09-27T10:00:00+08:00", "a", event_id="x1", cargo_tonnes=5)
    again = dict(first)
    other = dict(first, ts="2023-09-27T11:00:00+08:00", cargo_tonnes=7)  # same id, other content
    monitor = fold(catalogue, [first, again, other])
    r = monitor.report()
    assert r["ports"]["khorgos"]["crossings"] == 1
    assert r["ports"]["khorgos"]["cargo_tonnes"] == 5
    assert r["ports"]["khorgos"]["watermark"] == "2023-09-27T10:00:00+08:00"
    assert r["rejected"] == {"malformed": 0, "invalid": 0, "unknown_port": 0, "duplicate": 2}


def test_every_rejection_reason_is_counted(catalogue):
    events = [
        b"{not json",
        b"[]",
        event("gate.exited", "2023-09-27T10:00:00"),
        event("gate.exited", "2023-09-27T10:00:00+08:00", port="atlantis"),
        event("gate.exited", "2023-09-27T10:00:00+08:00", event_id="d"),
        event("gate.exited", "2023-09-27T10:00:00+08:00", event_id="d"),
    ]
    monitor = fold(catalogue, events)
    assert monitor.report()["rejected"] == {"malformed": 2, "invalid": 1, "unknown_port": 1, "duplicate": 1}
    assert monitor.report()["ports"]["khorgos"]["crossings"] == 1


def test_throughput_counts_exits_in_the_last_hour_half_open(catalogue):
    events = [
        event("gate.exited", "2023-09-27T09:00:00+08:00", "a"),  # exactly watermark − 60 min: out
        event("gate.exited", "2023-09-27T09:00:00.001+08:00", "b"),  # in
        event("gate.exited", "2023-09-27T09:30:00+08:00", "c"),
        event("scan.started", "2023-09-27T10:00:00+08:00", "z"),  # not a crossing
        event("inspection.started", "2023-09-27T10:00:00+08:00", "z"),  # a second sensor: the watermark
        event("gate.exited", "2023-09-27T08:00:00+08:00", "late"),  # late: counted, not in the hour
    ]
    r = report(catalogue, events)
    assert r["throughput_per_hour"] == 2
    assert r["crossings"] == 4


def test_last_hour_averages_follow_the_watermark(catalogue):
    events = (
        crossing("old", "2023-09-27T07:00:00+08:00", "2023-09-27T07:10:00+08:00", "2023-09-27T08:00:00+08:00")
        + crossing("new", "2023-09-27T09:00:00+08:00", "2023-09-27T09:30:00+08:00", "2023-09-27T09:45:00+08:00")
        + _clock("2023-09-27T10:00:00+08:00", "z")
    )
    r = report(catalogue, events)
    assert r["last_hour_avg_inspection_seconds"] == {"all": 900.0, "truck": 900.0}
    assert r["avg_inspection_seconds"] == {"all": 1950.0, "truck": 1950.0}  # (3000 + 900) / 2
    assert r["last_hour_avg_wait_seconds"] == 1800.0
    assert r["avg_wait_seconds"] == 1200.0  # (600 + 1800) / 2


def test_wait_time_is_grouped_by_the_entry_day(catalogue):
    events = crossing("w", "2023-09-27T23:30:00+08:00", "2023-09-28T00:15:00+08:00", None)
    r = report(catalogue, events)
    assert r["avg_wait_seconds"] == 2700.0
    assert r["days"]["2023-09-28"]["avg_wait_seconds"] == 2700.0
    assert "2023-09-27" not in r["days"]


def test_queue_is_arrived_but_not_entered_per_direction(catalogue):
    events = [
        event("vehicle.arrived", "2023-09-27T10:00:00+08:00", "a"),
        event("vehicle.arrived", "2023-09-27T10:01:00+08:00", "b"),
        event("vehicle.arrived", "2023-09-27T10:02:00+08:00", "c", direction="inbound"),
        event("gate.entered", "2023-09-27T10:05:00+08:00", "a"),
        event("gate.entered", "2023-09-27T09:00:00+08:00", "d"),  # entered before arriving: never queued
        event("vehicle.arrived", "2023-09-27T10:06:00+08:00", "d"),
    ]
    assert report(catalogue, events)["queue"] == {"outbound": 1, "inbound": 1}


def test_a_vehicle_that_never_enters_leaves_the_queue_after_72_hours(catalogue):
    base = [event("vehicle.arrived", "2023-09-27T10:00:00+08:00", "stuck")]
    still = base + _clock("2023-09-30T09:59:59.999+08:00", "x")
    assert report(catalogue, still)["queue"] == {"outbound": 1, "inbound": 0}
    gone = base + _clock("2023-09-30T10:00:00+08:00", "x")
    assert report(catalogue, gone)["queue"] == {"outbound": 0, "inbound": 0}
    # and the drop does not depend on how the watermark got there
    hours = [f"2023-09-{27 + (10 + h) // 24}T{(10 + h) % 24:02d}:00:00+08:00" for h in range(73)]
    many = base + [e for h, ts in enumerate(hours) for e in _clock(ts, str(h))]
    assert report(catalogue, many)["queue"] == {"outbound": 0, "inbound": 0}


def test_late_entry_retracts_and_replaces_a_contribution(catalogue):
    # two gate.entered for one vehicle: the earliest one counts, whichever arrives first
    a = crossing("v", None, "2023-09-27T10:10:00+08:00", "2023-09-27T10:30:00+08:00")
    b = [event("gate.entered", "2023-09-27T10:00:00+08:00", "v")]
    assert report(catalogue, a + b)["avg_inspection_seconds"] == {"all": 1800.0, "truck": 1800.0}
    assert report(catalogue, b + a)["avg_inspection_seconds"] == {"all": 1800.0, "truck": 1800.0}


def test_counters_by_direction_class_and_type(catalogue):
    events = [
        event("gate.exited", "2023-09-27T10:00:00+08:00", "a"),
        event("gate.exited", "2023-09-27T10:00:00+08:00", "b", direction="inbound", vehicle_class="bus"),
        event("scan.completed", "2023-09-27T10:00:00+08:00", "b", result="flagged"),
    ]
    m = fold(catalogue, events).ports["khorgos"]
    assert m.crossings_by["outbound"]["truck"] == 1 and m.crossings_by["inbound"]["bus"] == 1
    assert m.events_by_type["gate.exited"] == 2 and m.events_by_type["scan.completed"] == 1


def test_ports_are_kept_apart(catalogue):
    events = [
        event("gate.exited", "2023-09-27T10:00:00+08:00", "a", port="lektse", event_id="same"),
        event("gate.exited", "2023-09-27T10:00:00+08:00", "a", port="khorgos", event_id="other"),
    ]
    r = fold(catalogue, events).report()
    assert list(r["ports"]) == ["khorgos", "lektse"]  # catalogue order
    assert r["ports"]["lektse"]["crossings"] == 1 and r["ports"]["khorgos"]["crossings"] == 1


def _year_of_traffic(days: int):
    """A vehicle every 10 minutes for `days` days; some never enter, all ids distinct."""
    start = 1695744000  # 2023-09-27T00:00:00+08:00
    for i in range(days * 144):
        t = start + i * 600
        def ts(dt: int, t=t) -> str:
            from datetime import UTC, datetime
            return datetime.fromtimestamp(t + dt, UTC).isoformat()
        yield event("vehicle.arrived", ts(0), f"v{i}")
        if i % 7:
            yield event("gate.entered", ts(300), f"v{i}")
            yield event("gate.exited", ts(1500), f"v{i}", cargo_tonnes=3)


def test_state_stays_bounded_on_event_time(catalogue):
    m = fold(catalogue, _year_of_traffic(20)).ports["khorgos"]
    assert m.crossings == sum(1 for i in range(20 * 144) if i % 7)
    assert m.watermark is not None and m.second_sensor is not None  # pruning is on
    assert len(m.ids) <= 49 * 144 * 3  # 48 h of ids (+ the current hour)
    exited = sum(1 for v in m.vehicles.values() if v.exited is not None)
    assert exited <= 74 * 6  # 72 h of vehicles that left (+ the current hour)
    assert len(m.vehicles) - exited <= 171 * 6 / 7  # 7 days and an hour of those that never entered
    assert sum(len(b) for _, b in m.id_hours) == len(m.ids)
    assert len(m.waiting) <= 73 * 6 / 7 + 1  # only the last 72 h of arrivals that never entered
    assert len(m.recent_exits) <= 2 * 6 and len(m.recent_inspections) <= 2 * 6
    assert len(m.recent_entries) <= 2 * 6 and len(m.recent_waits) <= 2 * 6 and len(m.recent_clearances) <= 2 * 6


def test_state_round_trips_through_json_and_goes_on_identically(catalogue):
    events = list(_year_of_traffic(4))
    head, tail = events[:900], events[900:]
    whole = fold(catalogue, events).ports["khorgos"]
    first = fold(catalogue, head).ports["khorgos"]
    restored = PortMetrics.from_state(orjson.loads(orjson.dumps(first.to_state())), catalogue["khorgos"])
    assert restored.report() == first.report()
    monitor = Monitor(catalogue)
    monitor.ports["khorgos"] = restored
    monitor.process_all(lines(tail))
    assert restored.report() == whole.report()
    assert orjson.dumps(restored.to_state()) == orjson.dumps(whole.to_state())
