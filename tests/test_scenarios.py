"""The named scenarios reproduce the published figures (PORTS.md) within their tolerance: counts and
inspection times as `analyze` sees them; waits and clearance times read off the events (tests/simhelpers.py)."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest
from simhelpers import Journeys, queue_over_time

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.logs.analyze import analyze_log
from producers.logs import write_log
from producers.run import from_scenario
from producers.scenarios import SCENARIOS

CAT = load_catalogue()


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, str]:
    """Each scenario written once, with its default seed, as `simulate --scenario NAME --out` would."""
    directory = tmp_path_factory.mktemp("scenarios")
    paths = {}
    for name, sc in SCENARIOS.items():
        path = str(directory / f"{name}.jsonl.gz")
        write_log(path, from_scenario(CAT, sc, seed=1).lines())
        paths[name] = path
    return paths


def _trucks_only(path: str, out: str, since: str | None = None, until: str | None = None) -> str:
    """The log's truck events (optionally only those in [since, until)), for `analyze` to count trucks."""
    from crossing_monitor.logs.files import open_log

    kept = []
    with open_log(path) as (lines, _raw, _size):
        for line in lines:
            o = orjson.loads(line)
            if o["vehicle_class"] == "truck" and (since is None or since <= o["ts"] < until):
                kept.append(line.rstrip(b"\n"))
    write_log(out, kept)
    return out


def test_khorgos_record_day_1927_trucks(logs, tmp_path):
    # The published figure counts trucks; analyze counts every crossing per day, so it is given the trucks.
    report = analyze_log(_trucks_only(logs["khorgos-record-day"], str(tmp_path / "t.jsonl")), CAT)
    khorgos = report["ports"]["khorgos"]
    assert khorgos["days"]["2023-09-27"]["crossings"] == pytest.approx(1927, rel=0.05)
    assert khorgos["peak_day"]["date"] == "2023-09-27"
    full = analyze_log(logs["khorgos-record-day"], CAT)["ports"]["khorgos"]
    assert full["peak_day"]["date"] == "2023-09-27"
    assert full["days"]["2023-09-27"]["crossings"] > khorgos["days"]["2023-09-27"]["crossings"]  # and other classes


def test_lektse_before_h986_over_two_hours(logs):
    report = analyze_log(logs["lektse-before-h986"], CAT)
    assert report["ports"]["lektse"]["avg_inspection_seconds"]["truck"] > 2 * 3600


def test_lektse_with_h986_18_minutes(logs):
    report = analyze_log(logs["lektse-h986"], CAT)
    assert report["ports"]["lektse"]["avg_inspection_seconds"]["truck"] == pytest.approx(18 * 60, rel=0.05)


def test_irkeshtam_first_night_966_freight_vehicles(logs, tmp_path):
    # From 10:00 on 1 Jun 2025 to 08:00 the next day: the crossings analyze counts in those hours.
    window = _trucks_only(
        logs["irkeshtam-first-night"], str(tmp_path / "w.jsonl"), "2025-06-01T10:00", "2025-06-02T08:00"
    )
    assert analyze_log(window, CAT)["ports"]["irkeshtam"]["crossings"] == pytest.approx(966, rel=0.05)


def test_queue_builds_while_arrivals_exceed_capacity_then_falls(logs):
    """Fold the log as the worker would and read the outbound queue at each hour of event time."""
    from crossing_monitor.logs.files import open_log

    monitor = Monitor(CAT)
    by_hour: dict[int, int] = {}
    with open_log(logs["queue-buildup"]) as (lines, _raw, _size):
        for line in lines:
            monitor.process(line)
            port = monitor.ports["alashankou"]
            hour = datetime.fromtimestamp(port.watermark / 1e6, CAT["alashankou"].tz).hour
            by_hour[hour] = max(by_hour.get(hour, 0), port.queue()["outbound"])
    before = max(by_hour[h] for h in (9,))  # the night's queue, which the opening is clearing
    surge = max(by_hour[h] for h in (11, 12, 13))
    after = max(by_hour[h] for h in (17, 18, 19, 20))
    assert before <= 15
    assert surge >= 40 and surge > 4 * before
    assert after <= 5
    peak_hour = max(by_hour, key=by_hour.get)
    assert 11 <= peak_hour <= 14  # the queue peaks at the end of the surge, not before
    assert analyze_log(logs["queue-buildup"], CAT)["ports"]["alashankou"]["avg_wait_seconds"] > 5 * 60


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenarios_are_clean_logs(logs, name):
    report = analyze_log(logs[name], CAT)
    assert report["rejected"] == {"malformed": 0, "invalid": 0, "unknown_port": 0, "duplicate": 0}
    assert set(report["ports"]) == set(SCENARIOS[name].ports)


def test_an_ordinary_day_stays_within_every_ports_inspection_target(tmp_path):
    """At catalogue traffic no port is over capacity: truck inspection below its alert threshold."""
    from producers.run import Run

    start = datetime.fromisoformat("2024-05-01T00:00:00+08:00")
    path = str(tmp_path / "ordinary.jsonl")
    write_log(path, Run(CAT, list(CAT), start, 7.0).lines())
    report = analyze_log(path, CAT)
    busy = [slug for slug, port in CAT.items() if port.traffic["vehicles_per_day"] >= 20]  # a mean worth testing
    assert len(busy) >= 4
    for slug in busy:
        truck = report["ports"][slug]["avg_inspection_seconds"]["truck"]
        assert truck < CAT[slug].targets["truck_inspection_minutes"] * 60, slug


def _lines(path: str) -> list[bytes]:
    from crossing_monitor.logs.files import open_log

    with open_log(path) as (lines, _raw, _size):
        return [line.rstrip(b"\n") for line in lines]


def _december(year: int) -> dict[str, float]:
    return {
        "since": datetime.fromisoformat(f"{year}-12-01T00:00+08:00").timestamp(),
        "until": datetime.fromisoformat(f"{year + 1}-01-01T00:00+08:00").timestamp(),
    }


@pytest.fixture(scope="module")
def december(logs) -> dict[int, Journeys]:
    return {2017: Journeys(_lines(logs["dec-2017"])), 2023: Journeys(_lines(logs["dec-2023"]))}


TRUCK = {"class": "truck"}


def test_dec_2017_walk_up_trucks_wait_one_to_two_days(december):
    j = december[2017]
    assert not j.select(booked=True)  # no advance booking yet
    pooled = j.wait(booked=False, **TRUCK, **_december(2017))
    assert 24 * 3600 <= pooled <= 60 * 3600
    for port in ("khorgos", "alashankou"):
        assert 24 * 3600 <= j.wait(port=port, booked=False, **TRUCK, **_december(2017)) <= 60 * 3600, port


@pytest.mark.parametrize(("direction", "published"), [("inbound", 72.6), ("outbound", 66.4)])
def test_dec_2023_clearance_fell_as_published_against_dec_2017(december, direction, published):
    """Imports = inbound, exports = outbound; the two ports together, as the customs published it."""
    before = december[2017].clearance(direction=direction, **TRUCK, **_december(2017))
    after = december[2023].clearance(direction=direction, **TRUCK, **_december(2023))
    assert 100 * (1 - after / before) == pytest.approx(published, abs=5)


def test_dec_2023_booked_trucks_wait_little_and_walk_ups_still_queue(december):
    j = december[2023]
    assert j.wait(booked=True, **_december(2023)) < 3600
    assert j.wait(booked=False, **TRUCK, **_december(2023)) > 8 * 3600


def test_list_scenarios_shows_each_published_figure(capsys):
    from simhelpers import run_cli

    assert run_cli("simulate", "--list-scenarios") == 0
    out = " ".join(capsys.readouterr().out.split())
    for sc in SCENARIOS.values():
        assert f"published: {' '.join(sc.published.split())}" in out
    assert "72.6 %" in out and "24-60 h" in out


def test_an_ordinary_week_stays_below_every_ports_queue_and_wait_targets(tmp_path):
    """The targets mean something: an ordinary week never passes them (so an alert is news), and at the busy
    ports it queues in the morning and has waits."""
    from collections import defaultdict

    from producers.run import Run

    start = datetime.fromisoformat("2026-11-20T00:00:00+08:00")
    lines = list(Run(CAT, list(CAT), start, 7.0).lines())
    j = Journeys(lines)
    for slug, port in CAT.items():
        for direction in ("outbound", "inbound"):
            series = queue_over_time(lines, slug, direction)
            assert max((n for _, n in series), default=0) <= port.targets["queue_vehicles"], (slug, direction)
        by_hour = defaultdict(list)
        for v in j.select(port=slug):
            if "entered" in v:
                by_hour[int(v["entered"] // 3600)].append(v["entered"] - v["arrived"])
        worst = max((sum(w) / len(w) for w in by_hour.values()), default=0.0)
        assert worst <= port.targets["wait_minutes"] * 60, slug
    for slug in ("khorgos", "alashankou"):
        assert max(n for _, n in queue_over_time(lines, slug, "outbound")) >= 10, slug
        assert j.wait(port=slug) > 10 * 60, slug
