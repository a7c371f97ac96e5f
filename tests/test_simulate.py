"""The simulator's model: valid, reproducible events whose times follow from capacity and hours."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import random
from collections import Counter, defaultdict
from datetime import datetime

import orjson
import pytest
from simhelpers import Journeys, objects, queue_over_time, run_cli

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.events import EVENT_TYPES, Event, parse
from crossing_monitor.logs.analyze import analyze_log
from producers import draws
from producers.config import ConfigError
from producers.faults import Faults, parse_faults
from producers.logs import write_log
from producers.pacing import Pacer
from producers.parallel import ModelProcesses, share_out
from producers.run import Run, from_scenario
from producers.scenarios import SCENARIOS
from producers.simulate import parse_start

CAT = load_catalogue()
START = datetime.fromisoformat("2024-05-01T00:00:00+08:00")
ORDER = {t: i for i, t in enumerate(EVENT_TYPES)}


def lines_of(**kw) -> list[bytes]:
    params = {"catalogue": CAT, "ports": list(CAT), "start": START, "days": 1.0}
    params.update(kw)
    return list(Run(**params).lines())


@pytest.fixture(scope="module")
def day() -> list[bytes]:
    return lines_of()


def test_same_seed_same_bytes_other_seed_other_traffic():
    assert lines_of(seed=7) == lines_of(seed=7)
    assert lines_of(seed=7) != lines_of(seed=8)


def test_every_event_is_valid_unique_and_in_time_order(day):
    ids = set()
    last = 0
    for line in day:
        ev = parse(line, CAT)
        assert isinstance(ev, Event), (ev, line)
        assert ev.event_id not in ids
        ids.add(ev.event_id)
        assert ev.ts >= last
        last = ev.ts
    stamps = [o["ts"] for o in objects(day[:100])]
    assert all(len(s) == len("2024-05-01T09:00:00.123+08:00") and s.endswith("+08:00") for s in stamps)


def test_each_vehicle_goes_through_the_pipeline_in_order(day):
    journeys: dict[str, list[dict]] = defaultdict(list)
    for o in objects(day):
        journeys[o["vehicle_id"]].append(o)
    complete = 0
    for events in journeys.values():
        types = [e["type"] for e in events]
        assert types == sorted(types, key=ORDER.__getitem__)
        assert types[0] == "vehicle.arrived" and "booked" in events[0]
        assert len({(e["port"], e["direction"], e["vehicle_class"]) for e in events}) == 1
        short = {"outbound": "out", "inbound": "in"}[events[0]["direction"]]
        assert events[0]["lane"] == f"{short}-approach"  # the approach road: no entry lane is chosen yet
        assert len({e["lane"] for e in events[1:]}) <= 1  # then one entry lane from the barrier to the exit
        if types[-1] == "gate.exited":
            complete += 1
            assert "gate.entered" in types
            if "scan.completed" in types:
                result = next(e["result"] for e in events if e["type"] == "scan.completed")
                assert result in ("clear", "flagged")
                if result == "flagged":
                    assert "inspection.started" in types
            if events[0]["vehicle_class"] == "truck":
                assert events[-1]["cargo_tonnes"] >= 0
    assert complete >= 0.98 * len(journeys)  # all but the last few of the day cross


def test_classes_directions_and_volume_follow_the_catalogue(day):
    arrived = [o for o in objects(day) if o["type"] == "vehicle.arrived"]
    by_port = Counter(o["port"] for o in arrived)
    khorgos = CAT["khorgos"].traffic
    assert by_port["khorgos"] == pytest.approx(khorgos["vehicles_per_day"], rel=0.1)
    k = [o for o in arrived if o["port"] == "khorgos"]
    trucks = sum(o["vehicle_class"] == "truck" for o in k) / len(k)
    assert trucks == pytest.approx(khorgos["class_mix"]["truck"], abs=0.05)
    outbound = sum(o["direction"] == "outbound" for o in k) / len(k)
    assert outbound == pytest.approx(khorgos["outbound_share"], abs=0.05)
    booked = [o for o in k if o["vehicle_class"] == "truck"]
    assert sum(o["booked"] for o in booked) / len(booked) == pytest.approx(khorgos["booked_share"], abs=0.05)


def test_vehicles_arrive_round_the_clock_but_enter_only_while_the_port_is_open(day):
    lektse = CAT["lektse"]
    closed_arrivals = 0
    for o in objects(day):
        if o["port"] == "lektse" and o["type"] == "gate.entered":
            assert lektse.hours.is_open(datetime.fromisoformat(o["ts"])), o
        if o["port"] == "khorgos" and o["type"] == "vehicle.arrived":
            closed_arrivals += not CAT["khorgos"].hours.is_open(datetime.fromisoformat(o["ts"]))
    assert closed_arrivals > 30  # trucks come at night too, and queue for the morning


def test_scanners_and_bays_serve_one_vehicle_at_a_time(day):
    busy: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for o in objects(day):
        if o["type"].startswith(("scan.", "inspection.")):
            busy[o["sensor_id"]].append((o["ts"], o["type"]))
    assert busy
    for sensor, seq in busy.items():
        kinds = [t.split(".")[1] for _, t in seq]
        assert kinds == ["started", "completed"] * (len(kinds) // 2), sensor


def test_legacy_regime_inspects_freight_by_hand_without_scanning():
    legacy = lines_of(ports=["lektse"], days=5, regime="legacy")
    trucks = defaultdict(set)
    for o in objects(legacy):
        if o["vehicle_class"] == "truck":
            trucks[o["vehicle_id"]].add(o["type"])
    assert trucks
    for types in trucks.values():
        assert not types & {"scan.started", "scan.completed"}
        if "gate.exited" in types:
            assert "inspection.completed" in types


def test_log_is_gzip_when_the_name_says_so(tmp_path):
    lines = lines_of(ports=["burang"], days=3)
    path = tmp_path / "b.jsonl.gz"
    assert write_log(path, lines) == len(lines)
    assert gzip.decompress(path.read_bytes()).splitlines() == lines


# ---- faults ------------------------------------------------------------------------------------


def _analyze(tmp_path, name, lines):
    path = tmp_path / name
    write_log(path, lines)
    return analyze_log(str(path), CAT)


def test_duplicates_are_counted_as_duplicates(tmp_path):
    run = Run(CAT, ["khorgos"], START, 1.0, faults=Faults(duplicates=0.02))
    lines = list(run.lines())
    assert run.stats["fault.duplicates"] > 50
    report = _analyze(tmp_path, "d.jsonl", lines)
    assert report["rejected"]["duplicate"] == run.stats["fault.duplicates"]
    clean = _analyze(tmp_path, "c.jsonl", lines_of(ports=["khorgos"]))
    assert report["ports"] == clean["ports"]


def test_missed_events_are_missing(tmp_path):
    run = Run(CAT, ["khorgos"], START, 1.0, faults=Faults(missed=0.02))
    lines = list(run.lines())
    clean = lines_of(ports=["khorgos"])
    assert len(lines) == len(clean) - run.stats["fault.missed"]
    report = _analyze(tmp_path, "m.jsonl", lines)
    base = _analyze(tmp_path, "c.jsonl", clean)
    missed_exits = run.stats["fault.missed.gate.exited"]
    assert missed_exits > 0
    assert report["ports"]["khorgos"]["crossings"] == base["ports"]["khorgos"]["crossings"] - missed_exits


def test_an_offline_port_uploads_late_in_a_burst_with_unchanged_event_times(tmp_path):
    ports = ["khorgos", "alashankou"]
    run = Run(CAT, ports, START, 1.0, faults=Faults(offline=4))
    lines = list(run.lines())
    clean = lines_of(ports=ports)
    assert sorted(lines) == sorted(clean) and lines != clean  # the same events, sent later than the others
    assert run.stats["fault.offline"] > 50
    stamps = [datetime.fromisoformat(o["ts"]).timestamp() for o in objects(lines)]
    late = max(high - ts for high, ts in zip(_running_max(stamps), stamps, strict=True))
    assert late > 3 * 3600  # the burst carries events hours older than what was sent before them
    assert _analyze(tmp_path, "o.jsonl", lines) == _analyze(tmp_path, "c.jsonl", clean)


def _running_max(values):
    high = float("-inf")
    for v in values:
        high = max(high, v)
        yield high


def test_a_skewed_clock_shifts_only_its_own_sensor():
    skewed = list(objects(lines_of(ports=["khorgos"], faults=Faults(skew=90))))
    clean = list(objects(lines_of(ports=["khorgos"])))
    assert [o["event_id"] for o in skewed] == [o["event_id"] for o in clean]
    shifted = 0
    for a, b in zip(skewed, clean, strict=True):
        delta = datetime.fromisoformat(a["ts"]) - datetime.fromisoformat(b["ts"])
        if a["sensor_id"] == "khorgos-out-1-exit":
            assert delta.total_seconds() == 90
            shifted += 1
        else:
            assert a == b
    assert shifted > 0


def test_fault_spec_parsing():
    assert parse_faults("duplicates, offline=4,skew") == Faults(duplicates=0.01, offline=4.0, skew=120.0)
    for bad in ("gremlins", "missed=2", "offline=soon"):
        with pytest.raises(ValueError):
            parse_faults(bad)


# ---- the command line --------------------------------------------------------------------------


def test_simulate_writes_a_log_and_says_what_it_did(tmp_path, capsys):
    out = tmp_path / "s.jsonl"
    argv = ["simulate", "--ports", "lektse,burang", "--start", "2024-05-01", "--days", "2", "--out", str(out)]
    assert run_cli(*argv, "--faults", "duplicates") == 0
    err = capsys.readouterr().err
    assert "events of lektse, burang from 2024-05-01T00:00+08:00" in err
    lines = out.read_bytes().splitlines()
    assert {o["port"] for o in objects(lines)} == {"lektse", "burang"}
    assert run_cli(*argv, "--faults", "duplicates") == 0
    assert out.read_bytes().splitlines() == lines


def test_list_scenarios(capsys):
    assert run_cli("simulate", "--list-scenarios") == 0
    out = capsys.readouterr().out
    for name in ("khorgos-record-day", "lektse-before-h986", "lektse-h986", "irkeshtam-first-night", "queue-buildup"):
        assert name in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ports", "atlantis"], "unknown port 'atlantis'"),
        (["--scenario", "nope"], "no scenario 'nope'"),
        (["--speed", "fast"], "--speed 'fast'"),
        (["--faults", "gremlins"], "unknown fault 'gremlins'"),
        (["--start", "yesterday-ish"], "--start 'yesterday-ish'"),
        (["--days", "-1"], "--days must be more than 0"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert run_cli("simulate", "--out", str(tmp_path / "x.jsonl"), *argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_start_defaults():
    tz = CAT["khorgos"].tz
    assert parse_start(None, tz, live=False).hour == 0
    assert parse_start("2023-09-27T08:30", tz, live=False).isoformat() == "2023-09-27T08:30:00+08:00"


def test_a_broker_that_is_down_is_one_clear_message(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    code = run_cli(
        "simulate", "--ports", "burang", "--speed", "max", "--bootstrap", f"127.0.0.1:{port}", "--patience", "1"
    )
    err = capsys.readouterr().err
    assert code == 2
    assert f"cannot reach Kafka at 127.0.0.1:{port} after 2 attempts" in err  # at 0 s and after the 1 s back-off
    assert "retrying in 1 s (attempt 1" in err and "Traceback" not in err


def test_serialised_events_are_plain_json_objects(day):
    assert all(type(orjson.loads(line)) is dict for line in day[:1000])


# ---- byte for byte: the serialisation, the output of a seed, one process or several -------------


def test_each_event_is_the_bytes_orjson_makes_of_it():
    """The model writes JSON from pieces it serialised once; every line must still be exactly what
    `orjson.dumps` gives for the same object (same keys, same order, same escapes and numbers)."""
    faults = Faults(duplicates=0.01, missed=0.01, offline=3.0, skew=90.0)
    lines = lines_of(days=2.0, faults=faults) + lines_of(ports=["lektse", "gyirong"], days=20, regime="legacy")
    for line in lines:
        assert orjson.dumps(orjson.loads(line)) == line


# sha256 of "\n".join(lines) for fixed settings: a seed's events must not change unless the model is meant
# to change (last meant: round-the-clock arrivals, staffed lanes, booked trucks let in first; issue 13).
GOLDEN = [
    (lambda: Run(CAT, list(CAT), START, 3.0, seed=5, faults=Faults(0.01, 0.01, 3.0, 60.0)),
     28638, "c5638efd39d889d018a0d2ef7d257311710f32a31741bd28358fdee34beb3856"),
    (lambda: from_scenario(CAT, SCENARIOS["queue-buildup"]),
     3515, "745f51c3e9b8136ee3e573a2e5430bf0e5cdfe62ddd3db3b519fd2b29b557452"),
    (lambda: Run(CAT, ["lektse", "khorgos"], START, 2.0, regime="legacy"),
     8423, "abf6497aadcff11b9d001ee13e943484f5fa8a6a4e8ab0044b9e7cd5cab3c51a"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "count", "digest"), GOLDEN)
def test_a_seed_gives_the_events_it_always_gave(make, count, digest):
    lines = list(make().lines())
    assert (len(lines), hashlib.sha256(b"\n".join(lines)).hexdigest()) == (count, digest)


@pytest.mark.parametrize("seed", [1, 2, 99])
def test_the_inlined_draws_are_the_stdlibs_draw_for_draw(seed):
    """producers.draws replaces random.Random's gammavariate, choices and expovariate in the model: each
    draw must be the same float (or element) from the same state, and leave the generator in the same state."""
    ours, theirs = random.Random(seed), random.Random(seed)
    gamma4, gamma2 = draws.gamma(ours.random, 4.0), draws.gamma(ours.random, 2.0)
    expo = draws.expo(ours.random)
    classes, cum = ["truck", "bus", "car", "other"], [0.1, 0.15, 0.85, 0.9]
    pick = draws.choice(ours.random, classes, cum)
    for i in range(20_000):
        beta = 0.5 + (i % 97) * 3.7
        assert gamma4(beta) == theirs.gammavariate(4.0, beta)
        assert gamma2(beta) == theirs.gammavariate(2.0, beta)
        assert expo(1 / beta) == theirs.expovariate(1 / beta)
        assert pick() == theirs.choices(classes, cum_weights=cum)[0]
    assert ours.getstate() == theirs.getstate()
    with pytest.raises(ValueError):
        draws.gamma(ours.random, 1.0)  # (the stdlib takes another branch for alpha <= 1)


def _by_port(run: Run, items) -> dict[str, list[bytes]]:
    grouped: dict[str, list[bytes]] = defaultdict(list)
    for index, data in items:
        grouped[run.ports[index]].append(data)
    return dict(grouped)


async def _from_processes(run: Run, processes: int) -> list[tuple[int, bytes]]:
    got = []
    async with ModelProcesses(run, processes) as chunks:
        async for index, _upto, count, events in chunks:
            assert events.count(b"\n") + 1 == count
            got += [(index, data) for data in events.split(b"\n")]
    return got


@pytest.mark.parametrize("processes", [1, 3])
def test_model_processes_give_each_port_the_events_of_one_process(processes):
    def make() -> Run:
        return Run(CAT, list(CAT), START, 3.0, seed=5, faults=Faults(0.01, 0.01, 3.0, 60.0))

    one, several = make(), make()
    want = _by_port(one, ((index, data) for _, index, data in one.events()))
    got = _by_port(several, asyncio.run(_from_processes(several, processes)))
    assert got == want  # each port: the same bytes in the same order
    assert several.stats == one.stats and several.stats["fault.duplicates"] > 0  # the tally comes back too


def test_ports_are_shared_out_by_traffic():
    run = Run(CAT, list(CAT), START)
    groups = share_out(run, 3)
    assert sorted(i for g in groups for i in g) == list(range(len(CAT)))
    assert [run.ports[i] for i in groups[0]] == ["khorgos"]  # the busiest port has a process to itself
    assert share_out(run, 1) == [list(range(len(CAT)))]
    assert len(share_out(Run(CAT, ["burang", "lektse"], START), 8)) == 2  # at most one process per port


def test_a_bad_override_fails_before_any_process_starts():
    run = Run(CAT, ["khorgos"], START, overrides={"khorgos": {"traffic": {"vehicles_per_day": -1}}})
    with pytest.raises(ConfigError, match="vehicles_per_day"):
        asyncio.run(_from_processes(run, 1))


def test_a_model_process_that_dies_is_an_error_not_a_short_run():
    async def scenario() -> None:
        async with ModelProcesses(Run(CAT, ["khorgos"], START, days=float("inf")), 1) as chunks:
            async for _ in chunks:
                chunks._procs[0].kill()

    with pytest.raises(RuntimeError, match="stopped before its ports were done"):
        asyncio.run(scenario())


# ---- pacing --------------------------------------------------------------------------------------


def test_pacer_sends_a_history_within_its_seconds_then_speed_times_real_time():
    hour = 3_600_000
    pacer = Pacer(10, 0, history_until_ms=hour, history_seconds=30)
    assert pacer.due(0) == pacer.wall0
    assert pacer.due(hour // 2) == pytest.approx(pacer.wall0 + 15)
    assert pacer.due(hour) == pytest.approx(pacer.wall0 + 30)
    assert pacer.due(hour + 100_000) == pytest.approx(pacer.wall0 + 30 + 10)  # 100 s of events at 10x
    at_once = Pacer(10, 0, history_until_ms=hour)
    assert at_once.due(hour - 1) == at_once.wall0
    plain = Pacer(2)
    plain.due(5_000)  # the first event sets the origin
    assert plain.due(7_000) == pytest.approx(plain.wall0 + 1)


# ---- queues: staffed lanes, booked trucks first, incidents (issue 13) ------------------------------


def _local(o) -> datetime:
    return datetime.fromisoformat(o["ts"]).astimezone(CAT[o["port"]].tz)


def test_entries_use_only_the_lanes_the_staffing_schedule_staffs(day):
    """Capacity follows staff: each gate.entered is on a lane numbered within the lanes staffed at that local
    time, and at Khorgos the lanes beyond the day's most staffed are never used."""
    used: dict[tuple[str, str], set[int]] = defaultdict(set)
    for o in objects(day):
        if o["type"] != "gate.entered":
            continue
        port, local = CAT[o["port"]], _local(o)
        number = int(o["lane"].split("-")[1])
        # the model plans in 5-minute slots: the staffing of the slot's start applies
        slot = local.replace(minute=local.minute - local.minute % 5, second=0, microsecond=0).time()
        assert number <= port.staffing.lanes_at(slot, o["direction"], port.lanes[o["direction"]]), o
        used[o["port"], o["direction"]].add(number)
    most = max(s.lanes["outbound"] for s in CAT["khorgos"].staffing.shifts)
    assert most < CAT["khorgos"].lanes["outbound"]
    assert max(used["khorgos", "outbound"]) <= most


def test_a_morning_starts_with_the_nights_queue_that_the_opening_clears(day):
    series = dict(queue_over_time(day, "khorgos", "outbound"))
    opening = datetime.fromisoformat("2024-05-01T09:00:00+08:00").timestamp()
    before = [n for t, n in series.items() if t < opening]
    afternoon = [n for t, n in series.items() if opening + 5 * 3600 <= t < opening + 6 * 3600]
    assert before[-1] >= 20  # trucks queued overnight in front of the closed port
    assert max(before) == before[-1]  # and the queue only grew while it was closed
    assert min(afternoon) <= 3  # by the afternoon the opening has cleared it
    assert Journeys(day).wait(port="khorgos") > 15 * 60  # non-zero waits on an ordinary day


def test_booked_trucks_wait_little_and_walk_ups_longer(day):
    j = Journeys(day)
    for port in ("khorgos", "alashankou", "irkeshtam"):
        booked = j.wait(port=port, booked=True)
        walk_up = j.wait(port=port, booked=False, **{"class": "truck"})
        assert booked < 10 * 60, port
        assert walk_up > 3 * booked + 30 * 60, port


def test_an_incident_builds_a_queue_that_clears_after_it():
    incident = parse_faults("incident=khorgos:outbound-lanes=all@2024-05-01T13:00/2h").incidents
    healthy = lines_of(ports=["khorgos"])
    hit = lines_of(ports=["khorgos"], faults=Faults(incidents=incident))
    t0 = datetime.fromisoformat("2024-05-01T13:00:00+08:00").timestamp()
    t1 = t0 + 2 * 3600
    before = dict(queue_over_time(healthy, "khorgos", "outbound"))
    after = dict(queue_over_time(hit, "khorgos", "outbound"))
    peak = max(n for t, n in after.items() if t0 <= t < t1 + 60)
    assert peak > CAT["khorgos"].targets["queue_vehicles"]  # past the target the alert compares with
    assert max(n for t, n in before.items() if t0 <= t < t1) < 20
    assert not [o for o in objects(hit) if o["type"] == "gate.entered" and o["direction"] == "outbound"
                and t0 + 300 <= datetime.fromisoformat(o["ts"]).timestamp() < t1]  # fmt: skip
    assert min(n for t, n in after.items() if t1 + 3 * 3600 <= t < t1 + 4 * 3600) < 10  # and it clears


def test_a_scanner_incident_holds_scans_and_lengthens_inspection():
    incident = parse_faults("incident=khorgos:scanners=3@11:00/3h").incidents
    hit = list(objects(lines_of(ports=["khorgos"], faults=Faults(incidents=incident))))
    t0 = datetime.fromisoformat("2024-05-01T11:00:00+08:00").timestamp()
    starts = [o for o in hit if o["type"] == "scan.started" and t0 <= datetime.fromisoformat(o["ts"]).timestamp()
              < t0 + 3 * 3600]  # fmt: skip
    assert starts and {o["sensor_id"] for o in starts} == {"khorgos-scanner-4"}  # scanners 1-3 are out


def test_incident_values_parse_and_bad_ones_say_how_in_one_line():
    (incident,) = parse_faults("duplicates,incident=irkeshtam:inbound-lanes=2@+30m/90m").incidents
    assert (incident.port, incident.what, incident.count, incident.hours) == ("irkeshtam", "inbound", 2, 1.5)
    assert incident.window(START, CAT["irkeshtam"].tz) == (START.timestamp() + 1800, START.timestamp() + 7200)
    (at_ten,) = parse_faults("incident=khorgos:lanes@10:00/3h").incidents
    assert at_ten.window(START, CAT["khorgos"].tz)[0] == START.timestamp() + 10 * 3600
    for bad, says in [
        ("incident=khorgos", "use incident=PORT:WHAT"),
        ("incident=khorgos:gates@10:00/3h", "use incident=PORT:WHAT"),
        ("incident=khorgos:lanes@24:30/3h", "not a time of day"),
        ("incident=khorgos:lanes@10:00/0h", "more than 0"),
    ]:
        with pytest.raises(ConfigError, match=says) as exc:
            parse_faults(bad)
        assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="unknown port 'atlantis'"):
        Run(CAT, ["khorgos"], START, faults=parse_faults("incident=atlantis:lanes@10:00/1h"))


def test_simulate_help_documents_the_incident_fault(capsys):
    with pytest.raises(SystemExit):
        run_cli("simulate", "--help")
    assert "incident=PORT:WHAT[=N]@WHEN/DURATION" in " ".join(capsys.readouterr().out.split())


def test_a_full_road_turns_walk_ups_back_and_caps_the_queue():
    over = {"khorgos": {"traffic": {"vehicles_per_day": 3000, "holding_vehicles": {"outbound": 150, "inbound": 60}}}}
    run = Run(CAT, ["khorgos"], START, 3.0, overrides=over)
    lines = list(run.lines())
    assert run.stats["turned_back"] > 100
    walk_ups = {o["vehicle_id"] for o in objects(lines) if o["type"] == "vehicle.arrived" and not o["booked"]}
    queued: set[str] = set()
    for o in objects(lines):
        if o["direction"] == "outbound" and o["vehicle_id"] in walk_ups:
            if o["type"] == "vehicle.arrived":
                queued.add(o["vehicle_id"])
            elif o["type"] == "gate.entered":
                queued.discard(o["vehicle_id"])
            assert len(queued) <= 150


# ---- the demo's incident ---------------------------------------------------------------------------


@pytest.mark.parametrize("now", ["2026-12-01T15:32:17+08:00", "2026-12-01T20:30:00+08:00", "2026-12-01T04:17:00+08:00"])
def test_the_demos_incident_passes_the_target_within_ten_demo_minutes_and_clears(now):
    """At 10x real time the first ten minutes of the demo are 100 minutes of event time. The traffic the demo
    sends (every port from 24 h back, with the incident the demo schedules) is checked here."""
    from datetime import timedelta

    from crossing_monitor.cli.demo import _incident

    now_dt = datetime.fromisoformat(now)
    faults, banner = _incident(now_dt, 24, 10)
    (incident,) = parse_faults(faults).incidents
    port, target = incident.port, CAT[incident.port].targets["queue_vehicles"]
    assert CAT[port].traffic["vehicles_per_day"] >= 500  # a busy port
    assert port in banner and "passes its target" in banner
    run = Run(CAT, list(CAT), now_dt - timedelta(hours=24), 1.5, faults=parse_faults(faults))
    series = queue_over_time(run.lines(), port, "outbound")
    t_now = now_dt.timestamp()
    assert max(n for t, n in series if t < t_now) <= target  # not above it before the demo starts
    passes = next(t for t, n in series if t >= t_now and n > target)
    assert passes < t_now + 100 * 60  # within the first ten minutes of the demo
    later = [n for t, n in series if passes + 100 * 60 <= t < passes + 110 * 60]
    assert later and min(later) > target and max(later) > max(n for t, n in series if t <= passes)  # still growing
    end = incident.window(run.start, CAT[port].tz)[1]
    assert min(n for t, n in series if end < t < end + 4 * 3600) <= target  # and it clears


# ---- the staffing schedule in the catalogue --------------------------------------------------------

_PORT = """[p]
name = "P"
neighbour = "N"
timezone = "Asia/Shanghai"
lanes = { outbound = 4, inbound = 2 }
hours = { open = "09:00", close = "21:00" }
"""


def test_a_staffing_schedule_is_read_by_the_time_of_day_and_wraps_past_midnight():
    from datetime import time

    from crossing_monitor.core.catalogue import parse_catalogue

    text = _PORT + 'staffing = [{ from = "09:00", outbound = 2, inbound = 1 }, { from = "12:30", outbound = 4 }]\n'
    staffing = parse_catalogue(text)["p"].staffing
    assert staffing.lanes_at(time(8, 59), "outbound", 4) == 4  # the last shift runs on past midnight
    assert staffing.lanes_at(time(9, 0), "outbound", 4) == 2
    assert staffing.lanes_at(time(12, 29), "inbound", 2) == 1
    assert staffing.lanes_at(time(12, 30), "inbound", 2) == 0  # a direction a shift leaves out: none
    assert staffing.lanes_at(time(15, 0), "outbound", 3) == 3  # never more than the lanes there are
    unstaffed = parse_catalogue(_PORT)["p"].staffing
    assert unstaffed.lanes_at(time(10, 0), "outbound", 4) == 4  # no schedule: every lane


@pytest.mark.parametrize(
    ("staffing", "message"),
    [
        ('"all"', "must be a list of shifts"),
        ("[]", "must be a list of shifts"),
        ('[{ from = "9am", outbound = 1 }]', "is not a time 'HH:MM'"),
        ('[{ from = "24:00", outbound = 1 }]', "not 24:00"),
        ('[{ from = "10:00" }, { from = "09:00" }]', "is not later than the shift before it"),
        ('[{ from = "10:00", outbound = 5 }]', "outbound must be a whole number of lanes from 0 to 4, not 5"),
        ('[{ from = "10:00", inbound = -1 }]', "from 0 to 2, not -1"),
        ('[{ from = "10:00", outbound = 1.5 }]', "whole number"),
        ('[{ from = "10:00", lanes = 2 }]', "unknown keys ['lanes']"),
    ],
)
def test_a_bad_staffing_schedule_is_a_clear_catalogue_error(staffing, message):
    from crossing_monitor.core.catalogue import CatalogueError, parse_catalogue

    with pytest.raises(CatalogueError, match="staffing") as exc:
        parse_catalogue(_PORT + f"staffing = {staffing}\n", "ports.toml")
    assert message in str(exc.value) and str(exc.value).startswith("ports.toml: port 'p' staffing")
    assert "\n" not in str(exc.value)


def test_a_scenarios_bad_staffing_is_a_config_error():
    over = {"khorgos": {"staffing": [{"from": "09:00", "outbound": 99}]}}
    with pytest.raises(ConfigError, match="from 0 to 10"):
        Run(CAT, ["khorgos"], START, overrides=over).config(0)
