"""The forecast's method (crossing_monitor/core/forecast.py) on constructed situations where a naive
estimate breaks, and `analyze --predictions` (SPEC §3).

Alashankou's catalogue entry: open 09:00-21:00; outbound lanes staffed 2 from 00:00, 4 from 09:00,
5 from 12:00, 3 from 18:00; entry takes 3 minutes, so before anything is learned a lane lets in
20 vehicles an hour. Nothing here has queued long enough for a rate to be learned, so every figure
below follows from those numbers.
"""

from __future__ import annotations

import io

import orjson
from eventlog import event, lines, write_log

from crossing_monitor.cli import main
from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.logs.analyze import analyze_log

CATALOGUE = load_catalogue()
PORT = "alashankou"
DAY = "2023-10-10"
NEXT = "2023-10-11"
PER_LANE = 20  # vehicles an hour: 60 / entry_minutes


def at(hhmm: str, day: str = DAY) -> str:
    return f"{day}T{hhmm}:00+08:00"


def clock(ts: str) -> list[dict]:
    """Two sensors confirming the watermark at `ts`."""
    return [event("scan.started", ts, f"clock-{s}", port=PORT, sensor_id=f"clock-{s}") for s in ("a", "b")]


def queued(n: int, start: str, *, booked: bool = False, tag: str = "q") -> list[dict]:
    """n vehicles joining the outbound queue one minute apart from `start` (HH:MM)."""
    h, m = map(int, start.split(":"))
    out = []
    for i in range(n):
        minute = h * 60 + m + i
        out.append(event("vehicle.arrived", at(f"{minute // 60:02d}:{minute % 60:02d}"), f"{tag}{i}", port=PORT,
                         booked=booked, sensor_id="approach"))
    return out


def entries(lanes: int, per_lane: int, start: str, tag: str = "e") -> list[dict]:
    """Vehicles entering through `lanes` lanes, `per_lane` each, over the 15 minutes from `start`."""
    h, m = map(int, start.split(":"))
    out = []
    for lane in range(lanes):
        for k in range(per_lane):
            minute = h * 60 + m + k * 15 // per_lane
            out.append(event("gate.entered", at(f"{minute // 60:02d}:{minute % 60:02d}"), f"{tag}{lane}-{k}",
                             port=PORT, lane=f"out-{lane + 1}", sensor_id=f"entry-{lane}"))
    return out


def forecast(events: list[dict]) -> dict:
    monitor = Monitor(CATALOGUE)
    monitor.process_all(lines(events))
    return monitor.report()["ports"][PORT]["forecast"]["outbound"]


def test_a_vehicle_arriving_at_a_closed_port_waits_for_the_opening_plus_the_queue_ahead():
    f = forecast(queued(10, "21:30") + clock(at("22:00")))
    assert f["entries_per_hour"] == 0 and f["clear_seconds"] is None  # the naive rate says nothing at night
    to_opening = 11 * 3600  # 22:00 → 09:00
    at_opening = 10 / (4 * PER_LANE) * 3600  # 10 ahead, 4 lanes staffed from 09:00
    assert abs(f["predicted_wait_seconds"] - (to_opening + at_opening)) <= 60


def test_the_thin_first_hours_of_a_morning_follow_the_staffing_schedule():
    # 100 queued overnight, asked at 08:30: 30 min to the opening, then 4 lanes (80 an hour) until 12:00
    f = forecast(queued(100, "06:00") + clock(at("08:30")))
    expected = 1800 + 100 / (4 * PER_LANE) * 3600
    assert abs(f["predicted_wait_seconds"] - expected) <= 120
    # the same queue with every one of the 6 lanes counted from the opening would say much less
    assert f["predicted_wait_seconds"] > 1800 + 100 / (6 * PER_LANE) * 3600 + 600


def test_a_lane_lost_halves_the_service_rate():
    queue = queued(40, "10:00")  # 40 walk-ups waiting since 10:00; asked at 11:00, 4 lanes staffed
    four = forecast(queue + entries(4, 5, "10:45") + clock(at("11:00")))
    two = forecast(queue + entries(2, 5, "10:45", tag="x") + clock(at("11:00")))
    assert abs(four["predicted_wait_seconds"] - 40 / (4 * PER_LANE) * 3600) <= 60
    assert abs(two["predicted_wait_seconds"] - 40 / (2 * PER_LANE) * 3600) <= 120
    assert 1.8 <= two["predicted_wait_seconds"] / four["predicted_wait_seconds"] <= 2.2
    # and the what-if: one lane more beside the 2 in use clears the queue a third faster than at their rate
    assert two["clear_seconds_one_more_lane"] == round(two["clear_seconds"] * 2 / 3, 3)


def test_a_surge_lengthens_the_forecast_with_the_queue():
    small = forecast(queued(20, "10:00") + entries(4, 5, "10:45") + clock(at("11:00")))
    surge = forecast(queued(60, "10:00") + entries(4, 5, "10:45") + clock(at("11:00")))
    assert small["entries_per_hour"] == surge["entries_per_hour"] == 20
    ratio = surge["predicted_wait_seconds"] / small["predicted_wait_seconds"]
    assert 2.7 <= ratio <= 3.3


def test_booked_trucks_go_first_so_a_booked_majority_sees_only_the_booked_file():
    walkups = queued(30, "10:00")  # 30 walk-ups waiting
    # 40 booked trucks arrived and went in over the hour through the 4 staffed lanes
    passed_booked = [e for i in range(40) for e in (
        event("vehicle.arrived", at(f"10:{i * 3 // 2:02d}"), f"b{i}", port=PORT, booked=True, sensor_id="approach"),
        event("gate.entered", at(f"10:{i * 3 // 2:02d}"), f"b{i}", port=PORT, lane=f"out-{i % 4 + 1}",
              sensor_id="entry"))]
    renamed = [{**e, "event_id": e["event_id"] + "-w", "vehicle_id": e["vehicle_id"] + "w"} for e in passed_booked]
    passed_walkups = [{**e, "booked": False} if e["type"] == "vehicle.arrived" else e for e in renamed]
    booked_majority = forecast(walkups + passed_booked + clock(at("11:00")))
    walkup_majority = forecast(walkups + passed_walkups + clock(at("11:00")))
    assert booked_majority["predicted_wait_seconds"] == 0.0  # no booked truck ahead, lanes staffed: in at once
    assert walkup_majority["predicted_wait_seconds"] >= 30 / (4 * PER_LANE) * 3600 * 0.8  # the whole file ahead


def test_the_forecast_survives_a_snapshot():
    from crossing_monitor.core.metrics import PortMetrics

    monitor = Monitor(CATALOGUE)
    monitor.process_all(lines(queued(40, "10:00") + entries(2, 5, "10:45") + clock(at("11:00"))))
    m = monitor.ports[PORT]
    state = orjson.loads(orjson.dumps(m.to_state()))
    assert state["forecast"]["version"] == 1
    restored = PortMetrics.from_state(state, CATALOGUE[PORT])
    assert restored.forecast() == m.forecast()
    assert restored.forecaster == m.forecaster


# ---- analyze --predictions ---------------------------------------------------------------------


def _log() -> list[dict]:
    arrivals = queued(5, "21:00", tag="night") + queued(3, "10:00", tag="day")
    dup = dict(arrivals[2])  # a resent arrival: a duplicate, no line
    return (clock(at("21:00")) + arrivals[:3] + [dup] + arrivals[3:5] + clock(at("22:00"))
            + [event("vehicle.arrived", at("23:00"), "in1", port=PORT, direction="inbound", sensor_id="approach-in")]
            + [event("vehicle.arrived", "2023-10-10T23:00:00Z", "moon", port="moonbase")])  # unknown port: no line


def test_predictions_give_one_line_per_accepted_arrival_with_the_forecast_of_the_state_before_it():
    events = _log()
    out = io.BytesIO()
    analyze_log_lines = lines(events)
    monitor = Monitor(CATALOGUE)
    expected = []
    for i, raw in enumerate(analyze_log_lines):
        obj = orjson.loads(raw)
        if obj["type"] == "vehicle.arrived" and obj["port"] == PORT and raw not in analyze_log_lines[:i]:
            port = monitor.ports.get(PORT)
            before = port.report()["forecast"][obj["direction"]]["predicted_wait_seconds"] if port else 0.0
            expected.append((obj["vehicle_id"], obj["direction"], before))
        monitor.process(raw)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = write_log(f"{tmp}/log.jsonl", events)
        analyze_log(path, CATALOGUE, predictions=out)
    got = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [(g["vehicle_id"], g["direction"], g["predicted_wait_seconds"]) for g in got] == expected
    assert len(got) == 6  # 5 outbound (the duplicate left out) and 1 inbound; the unknown port has none
    assert got[0]["arrived"] == at("21:00")
    assert set(got[0]) == {"port", "direction", "vehicle_id", "arrived", "predicted_wait_seconds"}
    # the port closes at 21:00: a night arrival waits for the opening at 09:00
    assert all(g["predicted_wait_seconds"] >= 12 * 3600 for g in got[:5])


def test_analyze_writes_the_predictions_file_beside_its_report(tmp_path, capsys):
    log = tmp_path / "log.jsonl.gz"
    write_log(log, _log())
    predictions = tmp_path / "predictions.jsonl"
    assert main(["analyze", str(log), "--format", "json", "--predictions", str(predictions)]) == 0
    report = orjson.loads(capsys.readouterr().out)
    rows = [orjson.loads(line) for line in predictions.read_bytes().splitlines()]
    assert len(rows) == 6 and rows[0]["port"] == PORT
    assert "clear_seconds_one_more_lane" in report["ports"][PORT]["forecast"]["outbound"]


def test_the_promtool_test_of_the_forecast_alert_is_the_incident_scenario_regenerated():
    """tests/promtool/forecast_high.test.yml is what its generator writes from the simulated incident now
    (test_alerts_promtool.py runs it through promtool: the forecast alert fires before the build-up one)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent / "promtool" / "forecast_incident.py"
    spec = importlib.util.spec_from_file_location("forecast_incident", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render(module.sample()) == module.OUT.read_text(encoding="utf-8")


def test_a_port_in_a_daylight_saving_zone_forecasts_across_the_25_hour_day():
    """A replaced catalogue may name a zone with daylight saving: the projection crosses the autumn
    night that has a 25th hour (found by a review: an IndexError there made /api/ports answer 500)."""
    from importlib import resources

    from crossing_monitor.core.catalogue import parse_catalogue

    text = resources.files("crossing_monitor.core").joinpath("data/ports.toml").read_text(encoding="utf-8")
    berlin = parse_catalogue(text.replace("Asia/Shanghai", "Europe/Berlin"), "berlin.toml")

    def when(hhmm: str) -> str:
        return f"2026-10-25T{hhmm}:00+01:00"  # the evening of the day the clocks went back

    evs = [event("vehicle.arrived", when(f"22:{i:02d}"), f"v{i}", port=PORT, sensor_id="approach") for i in range(40)]
    evs += [event("scan.started", when("22:45"), f"clock-{s}", port=PORT, sensor_id=f"clock-{s}") for s in "ab"]
    monitor = Monitor(berlin)
    monitor.process_all(lines(evs))
    outbound = monitor.report()["ports"][PORT]["forecast"]["outbound"]
    assert outbound["predicted_wait_seconds"] > 3600  # the port is closed overnight: the queue waits for the opening


# ---- the schedule the forecast reads ---------------------------------------------------------------

_ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Asia/Shanghai"]


def _reference_table(port, zone: str, day) -> dict[str, list[int]]:
    """The day table as first written: the local midnight, then every 5 minutes until the next one."""
    from datetime import datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from crossing_monitor.core.forecast import DIRECTIONS, SLOT_S

    tz = ZoneInfo(zone)
    t = datetime.combine(day, time(0), tz).timestamp()
    end = datetime.combine(day + timedelta(days=1), time(0), tz).timestamp()
    table: dict[str, list[int]] = {d: [] for d in DIRECTIONS}
    while t < end:
        local = datetime.fromtimestamp(t, tz)
        for d in DIRECTIONS:
            table[d].append(
                port.staffing.lanes_at(local.time(), d, port.lanes.get(d, 0)) if port.hours.is_open(local) else 0
            )
        t += SLOT_S
    return table


def test_lanes_at_reads_the_day_table_whether_or_not_the_day_was_tabled():
    """`lanes_at` computes one slot when its day has no table; it must be that table's entry, on days
    whose clocks change too (23 and 25 hours) and in zones a quarter hour off."""
    import random
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from crossing_monitor.core.forecast import DIRECTIONS, SECOND, SLOT_S, Forecaster

    cat = load_catalogue()
    rng = random.Random(11)
    days = [date(2024, 3, 31), date(2024, 10, 27), date(2024, 3, 10), date(2024, 11, 3), date(2024, 7, 1)]
    checked = 0
    for port in cat.values():
        for zone in _ZONES:
            tz = ZoneInfo(zone)
            for day in days:
                want = _reference_table(port, zone, day)
                tabled = Forecaster(port, zone)
                assert tabled._day_table(day) == want
                fresh = Forecaster(port, zone)
                start = datetime.combine(day, datetime.min.time(), tz).timestamp()
                for _ in range(40):
                    ts = int((start + rng.randrange(0, 25 * 3600)) * SECOND)
                    local = datetime.fromtimestamp(ts // SECOND, tz)
                    if local.date() != day:
                        continue
                    k = (local.hour * 3600 + local.minute * 60 + local.second) // SLOT_S
                    for d in DIRECTIONS:
                        expected = want[d][min(k, len(want[d]) - 1)]
                        assert fresh.lanes_at(ts, d) == expected, (port.slug, zone, day, local, d)
                        assert tabled.lanes_at(ts, d) == expected
                        checked += 1
    assert checked > 1000
