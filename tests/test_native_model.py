"""The compiled port model held to the Python one (issue 16): for a PortConfig, start, end and seed,
`producers.native.NativePortModel` must yield the very (ms, bytes) that `producers.model.PortModel` yields,
and end with the same tally (turned_back, vehicles.*, crossings.*).

The Python model is the oracle: no expected event or figure is written here. The cases reach every
branch of the model where the compiled one could go its own way: each catalogue port, seeds and starts
(midnights and odd instants), days whose clocks change (Europe/Berlin, America/New_York, both changes),
the three regimes, lane and scanner incidents, surges, skewed sensor clocks, holding limits (vehicles
turned back), a port closed for days and one that never opens (the 8-day cache and its eviction), runs
without an end, classes without traffic, `next_open` before the run (it plans days and so draws), and
random configurations (hypothesis). The pieces are held to the stdlib too: CPython's Mersenne Twister
and the cargo figures' `orjson.dumps(round(x, 1))`, ties included.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import random
from collections import Counter
from datetime import datetime, time, timedelta
from math import inf
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossing_monitor.core.catalogue import Hours, load_catalogue
from producers import native
from producers.config import PortConfig, Surge, port_config
from producers.faults import parse_faults
from producers.model import PortModel, _json
from producers.native import NativePortModel
from producers.run import Run

CAT = load_catalogue()
START = datetime.fromisoformat("2024-05-01T00:00:00+08:00")
compiled = native.compiled()


def config(slug: str = "khorgos", regime: str | None = None, **changes) -> PortConfig:
    return dataclasses.replace(port_config(CAT[slug], regime=regime), **changes)


def both(cfg: PortConfig, start: float, end: float, seed: int, limit: int | None = None, probe: float | None = None):
    """The two models' events (the first `limit` if given) and tallies; `probe`: next_open asked first."""
    py, rs = PortModel(cfg, start, end, seed), NativePortModel(cfg, start, end, seed)
    if probe is not None:
        assert py.next_open(probe) == rs.next_open(probe)
    events = [list(itertools.islice(m.events(), limit)) for m in (py, rs)]
    return events, (Counter(py.stats), Counter(rs.stats))


def same(cfg: PortConfig, start: float, days: float, seed: int = 1, probe: float | None = None) -> Counter:
    """Assert both models agree on a run of `days`; returns the tally (for the case to check it was exercised)."""
    end = inf if days == inf else start + days * 86400
    (py, rs), (py_stats, rs_stats) = both(cfg, start, end, seed, probe=probe)
    assert py, "the case made no events"
    first_difference = next((i for i, (a, b) in enumerate(zip(py, rs, strict=False)) if a != b), None)
    assert first_difference is None, (py[first_difference], rs[first_difference])
    assert len(py) == len(rs)
    assert py_stats == rs_stats
    return py_stats


# ---- the pieces ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", ["1:khorgos:1714492800000", "7:burang:0", "x"])
@pytest.mark.parametrize("skip", [0, 1, 311, 623])
def test_the_generator_is_cpythons_mersenne_twister(seed, skip):
    rng = random.Random(seed)
    for _ in range(skip):  # start anywhere in the state's 624 words
        rng.random()
    floats, bits = compiled.model_draws(list(rng.getstate()[1]), 2000)
    expected_floats, expected_bits = [], []
    for _ in range(2000):
        expected_floats.append(rng.random())
        expected_bits.append(rng.getrandbits(64))
    assert floats == expected_floats
    assert bits == expected_bits


def test_cargo_figures_are_orjsons_text_of_pythons_round():
    rng = random.Random(16)
    values = [k + f for k in range(0, 2000) for f in (0.05, 0.15, 0.25, 0.35, 0.45, 0.75, 0.95, 0.0, 0.5)]  # ties
    values += [rng.uniform(0, 100) for _ in range(20000)] + [rng.uniform(0, 1e9) for _ in range(2000)]
    values += [0.0, 5e-324, 0.04999999999999999, 0.05, 999999999.95, 999999999.94, 1e9 - 1e-7, 123456789.25]
    for x in values:
        text = compiled.model_tonnes_json(x)
        assert text == _json(round(x, 1)), x
    for x in (1e9, 1e16, 1.5e300, inf, -1.0):  # left to Python, which the model asks
        assert compiled.model_tonnes_json(x) is None


# ---- the catalogue ------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", list(CAT))
@pytest.mark.parametrize(("seed", "start"), [(1, "2024-05-01T00:00:00+08:00"), (2, "2024-12-30T13:37:12.345+08:00"),
                                             (3, "2025-02-28T23:59:59.999+08:00")])  # fmt: skip
def test_every_catalogue_port(slug, seed, start):
    same(config(slug), datetime.fromisoformat(start).timestamp(), 2.5, seed)


@pytest.mark.parametrize("regime", ["legacy", "random", "h986"])
@pytest.mark.parametrize("slug", ["khorgos", "gyirong"])
def test_every_regime(slug, regime):
    tally = same(config(slug, regime=regime), START.timestamp(), 2, 5)
    assert tally["crossings.truck"] > 0


# ---- the calendar -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("Europe/Berlin", "2024-03-29T17:00:00"),
        ("Europe/Berlin", "2024-10-26T00:00:00"),
        ("America/New_York", "2024-03-09T00:00:00"),
        ("America/New_York", "2024-11-02T12:30:00"),
        ("Asia/Kathmandu", "2024-05-01T00:00:00"),
    ],  # fmt: skip
)
@pytest.mark.parametrize("slug", ["khorgos", "lektse"])
def test_days_whose_clocks_change(zone, start, slug):
    tz = ZoneInfo(zone)
    cfg = config(slug, tz=tz)
    same(cfg, datetime.fromisoformat(start).replace(tzinfo=tz).timestamp(), 3.5, 4)


def test_round_the_clock_dates_and_hours_past_midnight():
    begin = START.date()
    hours = Hours(time(22, 0), time(6, 30), ((begin + timedelta(days=1), begin + timedelta(days=2)),))
    same(config("alashankou", hours=hours), START.timestamp(), 4, 2)


def test_a_port_closed_for_days_by_an_incident():
    t0 = START.timestamp() + 5 * 3600
    incidents = ((t0, t0 + 3 * 86400, "outbound", 99), (t0, t0 + 3 * 86400, "inbound", 99))
    tally = same(config("irkeshtam", incidents=incidents), START.timestamp(), 5, 3)
    assert tally["vehicles.truck"] > 0


def test_a_port_that_never_opens_plans_past_the_cache():
    never = Hours(time(23, 58), time(23, 59))  # no 5-minute slot falls in it
    cfg = config("burang", hours=never, vehicles_per_day=40.0)
    py, rs = (
        PortModel(cfg, START.timestamp(), START.timestamp() + 86400, 1),
        NativePortModel(cfg, START.timestamp(), START.timestamp() + 86400, 1),
    )
    assert py.next_open(START.timestamp()) == rs.next_open(START.timestamp()) == inf  # 400 days planned
    assert list(py.events()) == list(rs.events())  # arrivals only: nobody is ever let in
    assert Counter(py.stats) == Counter(rs.stats) and py.stats["vehicles.truck"] > 0


@pytest.mark.parametrize("ahead", [7, 8, 9, 10, 17])
def test_the_eight_day_cache_evicts_as_the_python_one(ahead):
    """Open only on one date `ahead` days on: next_open plans every day up to it, so the run's first day
    is still cached, or was evicted and is planned again (drawn again) when the run looks at it."""
    day = START.date() + timedelta(days=ahead)
    cfg = config("khorgos", hours=Hours(time(23, 58), time(23, 59), ((day, day),)))
    same(cfg, START.timestamp(), 1.5, ahead, probe=START.timestamp() + 3600)


def test_next_open_before_the_run_draws_as_the_python_one():
    start = datetime.fromisoformat("2024-05-01T22:10:00+08:00").timestamp()
    for probe in (start, start + 3 * 86400 + 7, start + 20 * 86400):  # the last evicts the run's first days
        same(config("alashankou"), start, 2, 9, probe=probe)


# ---- what a scenario or a fault changes ------------------------------------------------------------


def test_lane_and_scanner_incidents():
    t0 = START.timestamp() + 8 * 3600
    incidents = (
        (t0, t0 + 6 * 3600, "outbound", 2),
        (t0 + 3600, t0 + 30 * 3600, "scanners", 1),
        (t0 + 86400, t0 + 86400 + 7200, "inbound", 1),
        (t0 + 2 * 3600, t0 + 5 * 3600, "scanners", 2),
    )
    same(config("khorgos", incidents=incidents, scanners=3), START.timestamp(), 3, 6)


def test_surges():
    surges = (Surge(START.timestamp() + 9 * 3600 + 17, 5.5, 3.0), Surge(START.timestamp() + 86400 * 1.5, 30, 0.25))
    same(config("irkeshtam", surges=surges), START.timestamp(), 3, 7)


def test_skewed_sensor_clocks():
    skew = {"khorgos-out-1-exit": 300.0, "khorgos-out-approach-cam": -42.5, "khorgos-scanner-1": 0.0015,
            "khorgos-in-2-entry": -86400.25, "khorgos-bay-1": 59.9995}  # fmt: skip
    same(config("khorgos", skew_seconds=skew), START.timestamp(), 2, 8)


def test_holding_limits_turn_vehicles_back():
    cfg = config("khorgos", vehicles_per_day=9000.0, holding={"outbound": 12.0, "inbound": 0.0})
    tally = same(cfg, START.timestamp(), 1.5, 10)
    assert tally["turned_back"] > 100


def test_classes_without_traffic_and_booked_trucks_only():
    same(config("khorgos", class_mix={"truck": 0.6, "car": 0.4, "bus": 0.0}), START.timestamp(), 1, 11)
    tally = same(config("khorgos", class_mix={"truck": 1.0}, booked_share=1.0), START.timestamp(), 2, 12)
    assert set(tally) == {"vehicles.truck", "crossings.truck"}
    cfg = config("khorgos", class_mix={"truck": 1.0}, booked_share=0.0, vehicles_per_day=0.0)
    (py, rs), stats = both(cfg, START.timestamp(), START.timestamp() + 86400, 1)
    assert py == rs == [] and stats[0] == stats[1] == Counter()


def test_cargo_figures_the_compiled_code_leaves_to_python():
    tally = same(config("khorgos", cargo_per_truck=4e9, regime="random"), START.timestamp(), 1, 16)  # 1e9 t and more
    assert tally["crossings.truck"] > 0


def test_one_direction_only():
    same(config("gyirong", lanes={"outbound": 0, "inbound": 2}), START.timestamp(), 2, 13)
    same(config("gyirong", lanes={"outbound": 3, "inbound": 0}), START.timestamp(), 2, 14)


def test_a_run_without_an_end():
    (py, rs), _ = both(config("alashankou"), START.timestamp(), inf, 15, limit=60_000)
    assert len(py) == 60_000 and py == rs


def test_a_run_of_the_catalogue_with_every_fault_is_the_same_with_either_model(monkeypatch):
    faults = parse_faults(
        "duplicates=0.01,missed=0.01,offline=3,skew=120,"
        "incident=khorgos:outbound-lanes=6@10:00/3h,incident=alashankou:scanners@+2h/90m"
    )
    runs = []
    for model in ("python", "compiled"):
        monkeypatch.setenv(native.ENV_VAR, model)
        run = Run(CAT, list(CAT), START, 2.0, seed=3, faults=faults)
        runs.append((list(run.events()), Counter(run.stats)))
        assert isinstance(run.model(0)[0], NativePortModel) == (model == "compiled")
    assert runs[0] == runs[1] and runs[0][1]["fault.offline"] > 0


# ---- random configurations ----------------------------------------------------------------------

ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


@st.composite
def configs(draw):
    slug = draw(st.sampled_from(list(CAT)))
    mix = {c: draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])) for c in ("truck", "car", "bus", "other")}
    if not sum(mix.values()):
        mix["car"] = 1.0
    start = datetime(2024, 1, 1, tzinfo=ZoneInfo("UTC")).timestamp() + draw(st.integers(0, 366 * 86400 * 1000)) / 1000
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    lanes = {"outbound": draw(st.integers(0, 4)), "inbound": draw(st.integers(0, 3))}
    if not any(lanes.values()):
        lanes["outbound"] = 1
    incidents = tuple(
        (start + a * 3600, start + (a + h) * 3600, what, n)
        for a, h, what, n in draw(
            st.lists(
                st.tuples(
                    st.integers(-5, 40),
                    st.integers(1, 30),
                    st.sampled_from(["outbound", "inbound", "scanners"]),
                    st.integers(1, 3),
                ),
                max_size=3,
            )
        )  # fmt: skip
    )
    cfg = dataclasses.replace(
        port_config(CAT[slug], regime=draw(st.sampled_from(["h986", "legacy", "random"]))),
        tz=tz,
        class_mix={c: s / sum(mix.values()) for c, s in mix.items()},
        vehicles_per_day=float(draw(st.integers(0, 3000))),
        booked_share=draw(st.sampled_from([0.0, 0.3, 1.0])),
        outbound_share=draw(st.floats(0, 1)),
        lanes=lanes,
        scanners=draw(st.integers(1, 3)),
        bays=draw(st.integers(1, 3)),
        entry_minutes=draw(st.sampled_from([0.0, 1.0, 3.0, 7.5])),
        exit_minutes=draw(st.sampled_from([0.0, 1.0])),
        flagged_share=draw(st.floats(0, 1)),
        sampled_share=draw(st.floats(0, 0.5)),
        holding={"outbound": draw(st.sampled_from([inf, 0.0, 3.0, 40.0])), "inbound": inf},
        incidents=incidents,
        surges=tuple(
            Surge(start + a * 3600, h, f)
            for a, h, f in draw(
                st.lists(st.tuples(st.integers(0, 40), st.floats(0.5, 20), st.floats(0, 5)), max_size=2)
            )
        ),  # fmt: skip
        skew_seconds={f"{slug}-out-1-exit": draw(st.sampled_from([0.0, 7.25, -3600.0, 1799.999]))},
    )
    return cfg, start, draw(st.floats(0.2, 2.0)), draw(st.integers(0, 2**32))


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", 40)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(configs())
def test_random_configurations(case):
    cfg, start, days, seed = case
    end = start + days * 86400
    (py, rs), (py_stats, rs_stats) = both(cfg, start, end, seed)
    assert py == rs
    assert py_stats == rs_stats


def test_without_the_compiled_module_runs_use_the_python_model(monkeypatch):
    monkeypatch.setattr(native, "_native", None)  # what a plain `pip install .` has
    assert not native.available() and "not installed" in native.describe()
    run = Run(CAT, ["lektse"], START, 1.0)
    assert type(run.model(0)[0]) is PortModel
    from producers.parallel import compiled_here

    assert not compiled_here(run)  # simulate --speed max: the Python models in child processes


# ---- the publishing paths -----------------------------------------------------------------------


def _python_by_port(make, monkeypatch) -> tuple[dict[int, list[bytes]], Counter]:
    monkeypatch.setenv(native.ENV_VAR, "python")
    run = make()
    got: dict[int, list[bytes]] = {}
    for _, index, data in run.events():
        got.setdefault(index, []).append(data)
    monkeypatch.delenv(native.ENV_VAR)
    return got, Counter(run.stats)


async def _chunks(source) -> dict[int, list[bytes]]:
    got: dict[int, list[bytes]] = {}
    async with source as chunks:
        async for index, _upto, count, events in chunks:
            assert events.count(b"\n") + 1 == count
            got.setdefault(index, []).extend(events.split(b"\n"))
    return got


@pytest.mark.parametrize("where", ["here", "one process", "three processes"])
def test_the_chunks_of_compiled_models_are_each_ports_events(where, monkeypatch):
    from producers.parallel import ModelProcesses, ModelsHere

    def make() -> Run:
        return Run(CAT, list(CAT), START, 3.0, seed=21)

    want, want_stats = _python_by_port(make, monkeypatch)
    run = make()
    source = ModelsHere(run) if where == "here" else ModelProcesses(run, 1 if where == "one process" else 3)
    assert asyncio.run(_chunks(source)) == want  # each port: the same bytes in the same order
    assert Counter(run.stats) == want_stats


def test_simulate_at_max_speed_publishes_the_python_models_events(kafka, tmp_path, monkeypatch):
    from simhelpers import run_cli

    from producers.parallel import compiled_here
    from producers.simulate import publish

    ports = ["khorgos", "lektse", "irkeshtam"]
    want, want_stats = _python_by_port(lambda: Run(CAT, ports, START, 2.0, seed=22), monkeypatch)
    run = Run(CAT, ports, START, 2.0, seed=22)
    assert compiled_here(run)
    topic = f"native-{random.getrandbits(32):08x}"
    assert asyncio.run(publish(run, kafka.bootstrap, topic, None, False)) == sum(map(len, want.values()))
    assert Counter(run.stats) == want_stats
    out = tmp_path / "published.jsonl"
    assert run_cli("record", str(out), "--topic", topic, "--bootstrap", kafka.bootstrap) == 0
    got: dict[int, list[bytes]] = {}
    for line in out.read_bytes().splitlines():
        got.setdefault(ports.index(orjson.loads(line)["port"]), []).append(line)
    assert got == want  # each port's events, in order, once


def test_an_endless_run_at_max_speed_stops_when_told(kafka):
    from producers.parallel import compiled_here
    from producers.simulate import publish

    run = Run(CAT, ["khorgos", "burang"], START, inf, seed=23)
    assert compiled_here(run)

    async def scenario() -> int:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.0, stop.set)
        return await asyncio.wait_for(publish(run, kafka.bootstrap, f"native-{random.getrandbits(32):08x}", None,
                                              False, stop=stop), 60)  # fmt: skip

    assert asyncio.run(scenario()) > 10_000


def test_a_model_setting_that_is_neither_compiled_nor_python_is_one_clear_error(monkeypatch):
    from crossing_monitor.errors import UserError

    monkeypatch.setenv(native.ENV_VAR, "off")
    with pytest.raises(UserError, match="CROSSING_MONITOR_MODEL='off': say compiled or python"):
        native.available()
