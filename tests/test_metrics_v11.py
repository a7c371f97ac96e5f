"""Contract 1.1 (SPEC §2, §3) in the metric core: each new or changed rule on a log small enough to
work out every figure by hand, the snapshot of every field, and a failure while folding."""

from __future__ import annotations

import orjson
import pytest
from eventlog import crossing, event, lines

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.clock import DayClock
from crossing_monitor.core.events import Rejection
from crossing_monitor.core.metrics import STATE_VERSION, PortMetrics, SnapshotVersionError
from crossing_monitor.core.monitor import Monitor
from streams.exporter import port_families

CATALOGUE = load_catalogue()
DAY = "2023-09-27"


def at(hhmm: str, day: str = DAY) -> str:
    return f"{day}T{hhmm}:00+08:00"


def clock(ts: str, tag: str = "clock") -> list[dict]:
    """Two sensors (scan.started of a vehicle of its own) confirming the watermark at `ts`."""
    return [event("scan.started", ts, f"{tag}-{s}", sensor_id=f"{tag}-{s}") for s in ("a", "b")]


def fold(events) -> Monitor:
    monitor = Monitor(CATALOGUE)
    monitor.process_all(lines(events))
    return monitor


def report(events, port: str = "khorgos") -> dict:
    return fold(events).report()["ports"][port]


# ---- the watermark -----------------------------------------------------------------------


def test_the_watermark_is_the_second_highest_sensor_clock():
    one = [event("scan.started", at("10:00"), "x", sensor_id="a")]
    assert report(one)["watermark"] == at("10:00")  # a single sensor: its own clock
    two = one + [event("scan.started", at("09:00"), "y", sensor_id="b")]
    assert report(two)["watermark"] == at("09:00")
    three = two + [event("scan.started", at("09:30"), "z", sensor_id="c"),
                   event("scan.started", at("08:00"), "w", sensor_id="a")]  # a's latest stays 10:00
    assert report(three)["watermark"] == at("09:30")
    four = three + [event("scan.started", at("11:00"), "u", sensor_id="b")]  # a 10:00, b 11:00, c 09:30
    assert report(four)["watermark"] == at("10:00")


def _ordinary_morning() -> list[dict]:
    return (
        crossing("t1", at("08:00"), at("08:30"), at("09:10"))
        + crossing("t2", at("09:00"), at("09:20"), at("09:45"), booked=True)
        + crossing("t3", at("09:30"), None, None)  # queued
        + [event("scan.completed", at("09:25"), "t2", result="flagged")]
        + clock(at("10:00"))
    )


def test_a_sensor_whose_clock_runs_three_days_ahead_changes_none_of_the_figures():
    base = _ordinary_morning()
    ahead = [event("scan.started", at(f"{h:02d}:00", "2023-09-30"), "t1", sensor_id="fast-scanner")
             for h in range(8, 11)]
    expected = report(base)
    assert expected["watermark"] == at("10:00") and expected["queue"]["outbound"] == 1
    assert expected["throughput_per_hour"] == 2
    def order_free(r: dict) -> dict:  # trend_samples are sampled at quarter closes: order dependent by design
        return {k: v for k, v in r.items() if k != "trend_samples"}

    assert report(base + ahead) == expected
    assert order_free(report(ahead + base)) == order_free(expected)
    # nor does it make the port forget what it has seen: a resent event is still a duplicate
    monitor = fold(base + ahead)
    assert monitor.process(orjson.dumps(base[0])).reason == "duplicate"


# ---- the queue ----------------------------------------------------------------------------


def test_a_vehicle_whose_entry_camera_missed_it_is_not_queued_once_a_later_stage_is_seen():
    events = (
        [event("vehicle.arrived", at("09:00"), v) for v in ("scanned", "exited", "inspected", "waiting")]
        + [event("scan.started", at("09:20"), "scanned"),
           event("gate.exited", at("09:40"), "exited"),
           event("inspection.completed", at("09:30"), "inspected"),
           event("vehicle.arrived", at("09:10"), "in1", direction="inbound")]
        + clock(at("10:00"))
    )
    assert report(events)["queue"] == {"outbound": 1, "inbound": 1}
    # the later stage first, the arrival after it: never queued
    assert report(list(reversed(events)))["queue"] == {"outbound": 1, "inbound": 1}


def test_a_50_hour_wait_is_queued_until_the_vehicle_enters_and_counted_in_the_wait_average():
    arrived = [event("vehicle.arrived", at("10:00"), "patient")]
    waiting = arrived + clock(at("11:59", "2023-09-29"))  # 49 h 59 min later
    r = report(waiting)
    assert r["queue"] == {"outbound": 1, "inbound": 0} and r["avg_wait_seconds"] is None
    entered = waiting + [event("gate.entered", at("12:00", "2023-09-29"), "patient")]
    r = report(entered)
    assert r["queue"] == {"outbound": 0, "inbound": 0}
    assert r["avg_wait_seconds"] == 50 * 3600.0
    assert r["days"]["2023-09-29"]["avg_wait_seconds"] == 50 * 3600.0
    assert r["last_hour_avg_wait_seconds"] is None  # grouped by the entry, after the watermark


def test_waits_count_up_to_seven_days():
    events = (
        crossing("week", at("10:00", "2023-09-20"), at("10:00"), None)  # exactly 7 days
        + crossing("longer", "2023-09-20T09:59:59+08:00", at("10:00"), None)  # a second more
        + crossing("minus", at("10:00"), at("09:59"), None)  # entered before it arrived
    )
    assert report(events)["avg_wait_seconds"] == 7 * 86400.0


# ---- wait by booking, clearance, scans ---------------------------------------------------


def test_wait_by_booking_follows_the_earliest_arrival():
    events = (
        crossing("a", at("10:00"), at("10:10"), None, booked=True)  # 600 booked
        + crossing("b", at("10:00"), at("10:30"), None)  # 1800 walk-up (no "booked")
        + crossing("c", at("10:05"), at("10:20"), None, booked=True)
        + [event("vehicle.arrived", at("10:00"), "c", booked=False)]  # earliest says walk-up: 1200
        + clock(at("10:30"))
    )
    r = report(events)
    assert r["avg_wait_seconds_by_booking"] == {"booked": 600.0, "walk_up": 1500.0}
    assert r["avg_wait_seconds"] == 1200.0  # (600 + 1800 + 1200) / 3
    assert r["days"][DAY]["avg_wait_seconds_by_booking"] == {"booked": 600.0, "walk_up": 1500.0}
    assert r["days"][DAY]["avg_wait_seconds"] == 1200.0


def test_clearance_per_direction_and_class_by_exit_day_last_hour_and_all_time():
    events = (
        crossing("o1", at("08:00"), None, at("10:00"))  # outbound truck 7200
        + crossing("o2", at("09:30"), None, at("09:50"), vehicle_class="car")  # outbound car 1200
        + crossing("o3", at("22:00", "2023-09-26"), None, at("23:00", "2023-09-26"))  # truck 3600, day before
        + crossing("i1", at("07:00"), None, at("08:40"), direction="inbound")  # inbound truck 6000
        + crossing("i2", at("08:00"), None, at("07:59"), direction="inbound")  # negative: left out
        + crossing("i3", at("09:00", "2023-09-19"), None, at("09:00"), direction="inbound")  # 8 days: left out
        + clock(at("10:00"))
    )
    r = report(events)
    assert r["crossings"] == 6
    assert r["avg_clearance_seconds"] == {
        "outbound": {"all": 4000.0, "truck": 5400.0, "car": 1200.0},
        "inbound": {"all": 6000.0, "truck": 6000.0},
    }
    assert r["last_hour_avg_clearance_seconds"] == {
        "outbound": {"all": 4200.0, "truck": 7200.0, "car": 1200.0},
        "inbound": {"all": None},
    }
    assert r["days"][DAY]["avg_clearance_seconds"] == {
        "outbound": {"all": 4200.0, "truck": 7200.0, "car": 1200.0},
        "inbound": {"all": 6000.0, "truck": 6000.0},
    }
    assert r["days"]["2023-09-26"]["avg_clearance_seconds"] == {
        "outbound": {"all": 3600.0, "truck": 3600.0},
        "inbound": {"all": None},
    }


def test_scans_are_distinct_events_counted_by_the_day_of_the_scan_and_a_day_of_scans_alone_is_a_day():
    first = event("scan.completed", at("10:05"), "s2", result="flagged")
    events = [
        event("scan.completed", at("10:00"), "s1", result="clear"),
        first,
        dict(first),  # resent: a duplicate
        event("scan.completed", at("00:10", "2023-09-28"), "s3", result="flagged"),
        event("gate.exited", at("10:30"), "s1"),
    ]
    monitor = fold(events)
    r = monitor.report()["ports"]["khorgos"]
    assert monitor.rejected["duplicate"] == 1
    assert r["scans"] == {"completed": 3, "flagged": 2}
    assert r["days"][DAY]["scans"] == {"completed": 2, "flagged": 1}
    assert r["days"]["2023-09-28"] == {
        "crossings": 0,
        "cargo_tonnes": 0.0,
        "avg_inspection_seconds": {"all": None},
        "avg_wait_seconds": None,
        "avg_wait_seconds_by_booking": {"booked": None, "walk_up": None},
        "avg_clearance_seconds": {"outbound": {"all": None}, "inbound": {"all": None}},
        "scans": {"completed": 1, "flagged": 1},
    }
    assert r["peak_day"] == {"date": DAY, "crossings": 1}


# ---- lanes in use and the forecast ---------------------------------------------------------


def test_lanes_in_use_entries_per_hour_and_time_to_clear():
    entries = [event("gate.entered", at(t), f"o{t}", lane=lane) for t, lane in
               (("09:10", "L1"), ("09:20", "L1"), ("09:30", "L1"), ("09:40", "L2"))]
    entries += [event("gate.entered", at("08:59"), "early", lane="L3"),  # before the last hour
                event("gate.entered", at("09:50"), "i1", lane="I1", direction="inbound")]
    queued = [event("vehicle.arrived", at(t), f"q{t}") for t in ("09:55", "09:58")]
    r = report(entries + queued + clock(at("10:00")))
    assert r["lanes_in_use"] == {"outbound": 2, "inbound": 1}
    assert r["queue"] == {"outbound": 2, "inbound": 0}
    predicted = {d: f.pop("predicted_wait_seconds") for d, f in r["forecast"].items()}
    assert r["forecast"] == {
        # 2 queued ÷ 4 entries an hour = half an hour; with a third lane beside the 2 in use, 20 minutes
        "outbound": {"entries_per_hour": 4, "clear_seconds": 1800.0, "clear_seconds_one_more_lane": 1200.0},
        "inbound": {"entries_per_hour": 1, "clear_seconds": 0.0, "clear_seconds_one_more_lane": 0.0},
    }
    # the method itself is tested in test_forecast.py: here, 0 for an empty queue, and 0 for 2 ahead of a
    # newcomer at 10:00 when the catalogue staffs 6 outbound lanes (a lane is free)
    assert predicted == {"outbound": 0.0, "inbound": 0.0}


def test_a_queue_nobody_enters_has_no_time_to_clear_and_the_predicted_wait_is_still_a_number():
    events = (
        crossing("w1", at("07:00"), at("07:30"), None, direction="inbound")  # inbound wait 1800, earlier
        + [event("vehicle.arrived", at("09:30"), "stuck", direction="inbound"),
           event("vehicle.arrived", at("09:40"), "alone")]  # outbound: no wait ever seen
        + clock(at("10:00"))
    )
    forecast = report(events)["forecast"]
    for d in ("outbound", "inbound"):
        assert forecast[d]["entries_per_hour"] == 0 and forecast[d]["clear_seconds"] is None
        assert isinstance(forecast[d]["predicted_wait_seconds"], float) and forecast[d]["predicted_wait_seconds"] >= 0
        # one lane opened at the rate a lane serves before anything is learned (60 / entry_minutes an hour)
        assert forecast[d]["clear_seconds_one_more_lane"] == 3600 / (60 / 3)


# ---- Prometheus: the new families and a histogram that never falls -------------------------


def _samples(families) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_the_inspection_histogram_only_grows_when_a_late_entry_replaces_a_duration():
    on_time = crossing("v", None, at("10:10"), at("10:30"))  # 1200 s
    monitor = fold(on_time + clock(at("10:30")))
    m = monitor.ports["khorgos"]
    before = _samples(port_families([m], CATALOGUE))
    monitor.process(orjson.dumps(event("gate.entered", at("10:00"), "v")))  # earlier: 1800 s
    after = _samples(port_families([m], CATALOGUE))
    truck = (("port", "khorgos"), ("vehicle_class", "truck"))
    for (name, labels), value in before.items():
        if name.endswith(("_total", "_bucket", "_count", "_sum")):
            assert after[(name, labels)] >= value, name
    assert after[("crossing_inspection_seconds_count", truck)] == 2
    assert after[("crossing_inspection_seconds_sum", truck)] == 3000.0
    assert after[("crossing_inspection_retracted_seconds_count", truck)] == 1
    assert after[("crossing_inspection_retracted_seconds_sum", truck)] == 1200.0
    le = {}  # the exact cumulative distribution: counted minus retracted, bucket by bucket
    for (name, labels), value in after.items():
        if name == "crossing_inspection_seconds_bucket" and ("vehicle_class", "truck") in labels:
            retracted = after[("crossing_inspection_retracted_seconds_bucket", labels)]
            le[dict(labels)["le"]] = value - retracted
    assert le["900.0"] == 0 and le["1200.0"] == 0 and le["1800.0"] == 1  # exactly the one 1800 s vehicle
    assert m.report()["avg_inspection_seconds"] == {"all": 1800.0, "truck": 1800.0}


def test_the_new_prometheus_families_carry_the_report_figures():
    events = (
        crossing("a", at("09:00"), at("09:10"), at("09:40"), booked=True, lane="L4")
        + [event("scan.completed", at("09:20"), "a", result="flagged"),
           event("scan.completed", at("09:21"), "b", result="clear"),
           event("vehicle.arrived", at("09:50"), "q")]
        + clock(at("10:00"))
    )
    m = fold(events).ports["khorgos"]
    s = _samples(port_families([m], CATALOGUE))
    out = (("direction", "outbound"), ("port", "khorgos"))
    assert s[("crossing_wait_booking_avg_seconds", (("booking", "booked"), ("port", "khorgos")))] == 600.0
    assert ("crossing_wait_booking_avg_seconds", (("booking", "walk_up"), ("port", "khorgos"))) not in s
    assert s[("crossing_clearance_avg_seconds", (*out, ("vehicle_class", "truck")))] == 2400.0
    assert s[("crossing_scans_total", (("port", "khorgos"), ("result", "flagged")))] == 1
    assert s[("crossing_scans_total", (("port", "khorgos"), ("result", "clear")))] == 1
    assert s[("crossing_lanes", out)] == CATALOGUE["khorgos"].lanes["outbound"]
    assert s[("crossing_lanes_in_use", out)] == 1
    assert s[("crossing_queue_clear_seconds", out)] == 3600.0  # 1 queued, 1 entry in the last hour
    forecast = m.report()["forecast"]["outbound"]
    assert s[("crossing_wait_predicted_seconds", out)] == forecast["predicted_wait_seconds"]
    assert s[("crossing_queue_clear_one_more_lane_seconds", out)] == forecast["clear_seconds_one_more_lane"] == 1800.0
    assert ("crossing_queue_clear_seconds", (("direction", "inbound"), ("port", "khorgos"))) in s  # empty: 0


# ---- snapshots and failures ------------------------------------------------------------------


def _rich_log() -> list[dict]:
    return (
        _ordinary_morning()
        + crossing("i1", at("07:00"), at("07:20"), at("08:40"), direction="inbound", vehicle_class="bus")
        + [event("gate.entered", at("07:10"), "i1", direction="inbound", vehicle_class="bus")]  # a retraction
        + [event("scan.completed", at("09:59"), "i1", result="clear", sensor_id="scanner-2")]
        + clock(at("11:00", "2023-09-28"), "next")
        + crossing("late", at("10:00", "2023-09-28"), at("10:30", "2023-09-28"), at("10:50", "2023-09-28"))
    )


def _fields(m: PortMetrics) -> dict:
    return {k: v for k, v in vars(m).items() if k != "clock"}


def test_the_snapshot_holds_every_field_and_a_restored_state_goes_on_identically():
    events = _rich_log()
    for cut in range(len(events) + 1):
        first = fold(events[:cut]).ports.get("khorgos")
        if first is None:
            continue
        state = orjson.loads(orjson.dumps(first.to_state()))
        assert state["version"] == STATE_VERSION
        restored = PortMetrics.from_state(state, CATALOGUE["khorgos"])
        assert _fields(restored) == _fields(first)
        monitor = Monitor(CATALOGUE)
        monitor.ports["khorgos"] = restored
        monitor.process_all(lines(events[cut:]))
        whole = fold(events).ports["khorgos"]
        assert _fields(restored) == _fields(whole)
        assert restored.report() == whole.report()


@pytest.mark.parametrize("change", [{"version": 1}, {"version": STATE_VERSION + 1}, {"version": None}])
def test_a_snapshot_of_another_version_is_refused_with_a_clear_error(change):
    state = fold(_ordinary_morning()).ports["khorgos"].to_state()
    with pytest.raises(SnapshotVersionError, match="version"):
        PortMetrics.from_state(state | change)
    assert issubclass(SnapshotVersionError, ValueError)
    old = dict(state)
    del old["version"]  # contract 1.0's snapshots had no version
    with pytest.raises(SnapshotVersionError):
        PortMetrics.from_state(old)


def test_a_failure_while_folding_is_an_invalid_rejection_and_leaves_the_state_as_it_was(monkeypatch):
    monitor = fold(_ordinary_morning())
    port = monitor.ports["khorgos"]
    before = orjson.dumps(port.to_state())
    rejected = dict(monitor.rejected)

    def boom(*_args, **_kwargs):
        raise RuntimeError("clearance exploded")

    monkeypatch.setattr(PortMetrics, "_clearance_of", boom)
    exit_t3 = orjson.dumps(event("gate.exited", at("10:00"), "t3", cargo_tonnes=5))
    assert monitor.process(exit_t3) == Rejection("invalid", "clearance exploded")
    assert orjson.dumps(port.to_state()) == before
    assert monitor.rejected == rejected | {"invalid": rejected["invalid"] + 1}
    monkeypatch.undo()
    # nothing of it was remembered: the same event folds in once the fault is gone
    assert monitor.process(exit_t3).type == "gate.exited"
    assert port.report()["crossings"] == 3


def test_a_failure_on_the_first_event_of_a_port_leaves_no_trace_of_the_port(monkeypatch):
    monitor = Monitor(CATALOGUE)

    def boom(_self, _ts):
        raise OverflowError("no such day")

    monkeypatch.setattr(DayClock, "day", boom)
    result = monitor.process(orjson.dumps(event("gate.exited", at("10:00"), port="lektse")))
    assert result == Rejection("invalid", "no such day")
    assert monitor.report() == {"ports": {}, "rejected": {"malformed": 0, "invalid": 1, "unknown_port": 0,
                                                          "duplicate": 0}}


def test_the_worker_checkpoint_is_versioned_and_an_unreadable_one_is_rebuilt():
    import zlib

    from streams.state import PartitionState

    monitor = fold(_rich_log())
    part = PartitionState(3, monitor, next_offset=42)
    restored = PartitionState.restore(3, CATALOGUE, part.snapshot())
    assert restored.next_offset == 42 and restored.monitor.report() == monitor.report()
    doc = orjson.loads(zlib.decompress(part.snapshot()))
    assert doc["version"] == STATE_VERSION
    del doc["version"]  # as contract 1.0's worker wrote it
    # not restored and no crash loop: an empty state at offset 0, rebuilt from the topic
    rebuilt = PartitionState.restore(3, CATALOGUE, zlib.compress(orjson.dumps(doc)))
    assert (rebuilt.next_offset, rebuilt.monitor.ports) == (0, {})


def test_a_vehicle_forgotten_by_its_own_events_watermark_step_starts_afresh():
    """An event whose own sensor moves the watermark far enough forgets the record of its vehicle (left
    72 h before): the event then starts a new record. It must not update the forgotten one, which a
    snapshot no longer holds (a restored worker would disagree with analyze)."""
    later = "2023-10-02"  # 5 days on
    events = (
        [event(t, at("08:00"), "old", sensor_id=s) for t, s in
         (("vehicle.arrived", "a"), ("gate.entered", "b"), ("gate.exited", "b"))]
        + [event("scan.started", at("08:00", later), "other", sensor_id="a")]  # a leads; b holds the watermark
        + [event("vehicle.arrived", at("08:00", later), "old", sensor_id="b")]  # moves it: "old" is forgotten
    )
    monitor = fold(events)
    port = monitor.ports["khorgos"]
    assert port.report()["queue"] == {"outbound": 1, "inbound": 0}  # the new arrival waits
    restored = PortMetrics.from_state(orjson.loads(orjson.dumps(port.to_state())), CATALOGUE["khorgos"])
    assert restored.report() == port.report()


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Asia/Kathmandu", "Europe/Berlin", "America/New_York"])
def test_a_clock_names_a_block_of_quarter_hours_as_it_names_each(zone):
    """`names` (the compiled fold asks for a day's worth at once) against `day`, across midnights and both
    clock changes of a year."""
    clock, each = DayClock(zone), DayClock(zone)
    quarter = 15 * 60 * 1_000_000
    first = 1_711_238_400 * 1_000_000 // quarter  # 2024-03-24 00:00 UTC, a week before Berlin's change
    for start in range(first, first + 366 * 96, 96 * 7):
        block = clock.names(start, 96 * 3)
        assert block == [each.day(q * quarter) for q in range(start, start + 96 * 3)]
