"""The live worker's Monitor on the compiled fold (NativeMonitor): message for message the Python Monitor's
verdicts, states and figures, and a checkpoint taken mid-way restores a state that goes on exactly so."""

from __future__ import annotations

from datetime import UTC, datetime

import eventlog
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from messy import messy_log

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.events import Rejection
from crossing_monitor.core.metrics import PortMetrics
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.logs.native import NativeMonitor

CATALOGUE = load_catalogue()


@pytest.fixture(scope="module")
def messages() -> list[bytes]:
    lines, _ = messy_log(days=1.5, seed=23)
    return [line.rstrip(b"\n") for line in lines] + [b"", b"  ", b"[]", b'{"port": "khorgos"}']


def verdict(result) -> tuple | None:
    return tuple(result) if type(result) is Rejection else None


def full(native: NativeMonitor, slug: str) -> dict:
    """The whole compiled state of a port, through the Python core (to_state: one order of the buckets)."""
    return PortMetrics.from_state(native.port_states()[slug], CATALOGUE[slug]).to_state()


def same(native: NativeMonitor, python: Monitor) -> None:
    assert native.rejected == python.rejected
    assert sorted(native.ports) == sorted(python.ports)
    assert native.port_states().keys() == python.port_states().keys()
    for slug, metrics in python.ports.items():
        assert full(native, slug) == metrics.to_state()
        assert native.ports[slug].report() == metrics.report()


def test_each_message_gets_the_python_monitors_verdict_and_the_states_are_equal(messages):
    native, python = NativeMonitor(CATALOGUE), Monitor(CATALOGUE)
    for raw in messages:
        assert verdict(native.process_decoded(raw, None)) == verdict(python.process(raw)), raw
    same(native, python)


def test_a_checkpoint_mid_way_restores_a_state_that_goes_on_as_the_uninterrupted_one(messages):
    half = len(messages) // 2
    native, python = NativeMonitor(CATALOGUE), Monitor(CATALOGUE)
    for raw in messages[:half]:
        native.process(raw)
        python.process(raw)
    # through JSON, as a checkpoint travels: tuples become lists
    doc = orjson.loads(orjson.dumps({"ports": native.port_states(), "rejected": native.rejected}))
    restored = NativeMonitor(CATALOGUE)
    for slug, state in doc["ports"].items():
        restored.load_port(slug, state)
    restored.rejected = doc["rejected"]
    python_doc = orjson.loads(orjson.dumps({"ports": python.port_states()}))
    restored_python = Monitor(CATALOGUE)
    for slug, state in python_doc["ports"].items():
        restored_python.load_port(slug, state)
    restored_python.rejected = dict(python.rejected)
    for raw in messages[half:]:
        assert verdict(restored.process(raw)) == verdict(restored_python.process(raw))
        python.process(raw)
    same(restored, restored_python)
    for slug, metrics in python.ports.items():  # = never interrupted
        assert full(restored, slug) == metrics.to_state()


def test_a_view_holds_only_what_figures_are_read_from(messages):
    native = NativeMonitor(CATALOGUE)
    for raw in messages:
        native.process(raw)
    for slug in native.ports:
        view, whole = native.ports[slug], native.port_states()[slug]
        assert not view.ids and len(view.vehicles) == len(view.waiting) < len(whole["vehicles"])
        assert view.report() == PortMetrics.from_state(whole, CATALOGUE[slug]).report()


def test_a_view_is_rebuilt_only_when_its_port_changed(messages):
    native = NativeMonitor(CATALOGUE)
    for raw in messages[:2000]:
        native.process(raw)
    slug = next(iter(native.ports))
    first = native.ports[slug]
    assert native.ports[slug] is first
    for raw in messages[2000:]:
        native.process(raw)
    assert native.ports[slug] is not first


@pytest.mark.parametrize("breakage", ["version", "vehicle", "sorted", "hour"])
def test_a_snapshot_it_cannot_have_written_is_refused(messages, breakage):
    native = NativeMonitor(CATALOGUE)
    for raw in messages[:3000]:
        native.process(raw)
    slug, state = next(iter(native.port_states().items()))
    state = orjson.loads(orjson.dumps(state))
    if breakage == "version":
        state["version"] = 99
    elif breakage == "vehicle":
        vid = next(iter(state["vehicles"]))
        state["vehicles"][vid] = state["vehicles"][vid][:5]
    elif breakage == "hour":  # sensors, but no hour: the Python core would mark vehicles touched in hour None
        state["hour"] = None
    else:
        state["recent_exits"] = [3, 2, 1]
    with pytest.raises(Exception):  # noqa: B017 - any refusal: the worker then rebuilds from the topic
        NativeMonitor(CATALOGUE).load_port(slug, state)


def test_the_compiled_fold_shares_the_python_cores_names_and_bounds():
    import crossing_monitor_native as compiled

    from crossing_monitor.core import events, metrics

    assert list(compiled.EVENT_TYPES) == list(events.EVENT_TYPES)
    assert list(compiled.INSPECTION_BUCKETS) == list(metrics.INSPECTION_BUCKETS)
    assert compiled.TS_RANGE == (events.TS_MIN, events.TS_END)
    assert compiled.STATE_VERSION == metrics.STATE_VERSION


def test_a_message_that_is_not_bytes_is_judged_as_the_python_monitor_judges_it():
    native, python = NativeMonitor(CATALOGUE), Monitor(CATALOGUE)
    for raw in ['{"event_id": "\ud800"}', "[1]", bytearray(b'{"port": "khorgos"}'), memoryview(b"x")]:
        assert verdict(native.process(raw)) == verdict(python.process(bytes(raw) if type(raw) is not str else raw))


# ---- hand-made snapshots: ids listed more than once, hours missing -----------------------------

SLUG = "khorgos"
T0 = 1714521600  # 2024-05-01T00:00:00Z, the start of an hour
H = 3600


def event(kind: str, t: int, vehicle: str = "v1", sensor: str = "s1", event_id: str | None = None) -> dict:
    stamp = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return eventlog.event(kind, stamp, vehicle, port=SLUG, sensor_id=sensor, event_id=event_id)


def tick(t: int) -> list[dict]:
    """Both sensors at `t`: the watermark (the second highest sensor clock) moves to `t`."""
    return [event("scan.completed", t, "tick", "s1"), event("scan.completed", t, "tick", "s2")]


def four_hours() -> dict:
    """A port's state after four hours of the watermark, three vehicles waiting (v0-v2), pruning on."""
    python = Monitor(CATALOGUE)
    for k in range(4):
        for e in [*tick(T0 + k * H), event("vehicle.arrived", T0 + k * H + 60, f"v{k}")]:
            python.process(orjson.dumps(e))
    return python.ports[SLUG].to_state()


def loaded(state: dict) -> tuple[NativeMonitor, Monitor]:
    """Both monitors with `state` loaded (through JSON, as a checkpoint travels)."""
    native, python = NativeMonitor(CATALOGUE), Monitor(CATALOGUE)
    native.load_port(SLUG, orjson.loads(orjson.dumps(state)))
    python.load_port(SLUG, orjson.loads(orjson.dumps(state)))
    return native, python


def fold_both(native: NativeMonitor, python: Monitor, events: list[dict]) -> list[tuple | None]:
    """Each event into both: the same verdict for each (returned), in order."""
    verdicts = []
    for e in events:
        raw = orjson.dumps(e)
        got, want = verdict(native.process(raw)), verdict(python.process(raw))
        assert got == want, e
        verdicts.append(want)
    return verdicts


def loaded_checkpoints(native: NativeMonitor, python: Monitor) -> tuple[NativeMonitor, Monitor]:
    """Each monitor's checkpoint (through JSON) loaded into a new one of its kind."""
    native_state, python_state = orjson.loads(orjson.dumps(native.port_states()[SLUG])), python.ports[SLUG].to_state()
    assert PortMetrics.from_state(native_state, CATALOGUE[SLUG]).to_state() == python_state
    restored_native, restored_python = NativeMonitor(CATALOGUE), Monitor(CATALOGUE)
    restored_native.load_port(SLUG, native_state)
    restored_python.load_port(SLUG, orjson.loads(orjson.dumps(python_state)))
    return restored_native, restored_python


def test_an_id_listed_in_two_hours_and_twice_in_one_is_forgotten_by_text_as_the_python_core_forgets_it():
    """`dup` listed in hour 0 and twice in hour 2 of a loaded state. The core forgets an hour's ids by
    text (`ids.pop`): hour 0 going forgets `dup` although hour 2 lists it; a `dup` folded after that is
    listed in its own hour, and hour 2 going (then that hour going) forgets it again, by its text. A
    checkpoint taken midway is loaded and folded on."""
    state = four_hours()
    state["id_hours"][0][1].append("dup")
    state["id_hours"][2][1][1:1] = ["dup", "dup"]
    native, python = loaded(state)
    dups: list[tuple | None] = []

    def dup(kind: str, t: int, vehicle: str = "v1") -> None:
        dups.extend(fold_both(native, python, [event(kind, t, vehicle, event_id="dup")]))

    dup("gate.entered", T0 + 3 * H)  # listed: a duplicate
    fold_both(native, python, tick(T0 + 48 * H))  # hour 0 forgotten
    dup("gate.exited", T0 + 48 * H)  # folded, listed in hour 48
    dup("vehicle.arrived", T0 + 48 * H, "v2")  # a duplicate
    fold_both(native, python, tick(T0 + 50 * H))  # hours 1 and 2 forgotten: `dup` (of hour 48) with them
    dup("vehicle.arrived", T0 + 50 * H, "v9")  # folded, listed in hour 50
    dup("scan.completed", T0 + 50 * H)  # a duplicate
    native, python = loaded_checkpoints(native, python)
    fold_both(native, python, tick(T0 + 96 * H))  # hour 48 forgotten: `dup` (of hour 50) by its text
    dup("gate.entered", T0 + 96 * H, "v9")  # folded, listed in hour 96
    fold_both(native, python, tick(T0 + 98 * H))  # hour 50 forgotten: `dup` (of hour 96) by its text
    dup("gate.exited", T0 + 98 * H, "v9")  # folded
    dup("gate.exited", T0 + 98 * H, "v9")  # a duplicate
    # the premise, by the 48 hours an id is remembered: the Python core judged so too
    assert [d is None for d in dups] == [False, True, False, True, False, True, True, False]
    assert full(native, SLUG) == python.ports[SLUG].to_state()
    assert native.ports[SLUG].report() == python.ports[SLUG].report()


def _last_hour_left_out(state: dict) -> None:
    state["id_hours"].pop()
    state["vehicle_hours"].pop()


HAND_MADE = {
    # the Python core then folds into a list that no hour holds: those ids are never forgotten, and those
    # vehicles are never pruned (unless touched again in a later hour)
    "no id hours": lambda s: s.update(id_hours=[]),
    "no vehicle hours": lambda s: s.update(vehicle_hours=[]),
    "no hours": lambda s: s.update(id_hours=[], vehicle_hours=[]),
    # the current hour's lists left out: the last hour listed takes the ids and vehicles
    "without the current hour": _last_hour_left_out,
    "hours newest first": lambda s: s.update(id_hours=s["id_hours"][::-1], vehicle_hours=s["vehicle_hours"][::-1]),
    "an id in the oldest and the current hour": lambda s: s["id_hours"][-1][1].append(s["id_hours"][0][1][0]),
}


@pytest.mark.parametrize("case", sorted(HAND_MADE))
def test_a_hand_made_state_folds_on_as_in_the_python_core(case):
    """States no fold writes but `PortMetrics.from_state` accepts: the same verdicts (ids resent before and
    after 48 h) and the same state once vehicles are 7 days and an hour old."""
    state = four_hours()
    HAND_MADE[case](state)
    native, python = loaded(state)
    old = state["id_hours"][0][1][0] if state["id_hours"] else "u-old"
    resent = [event("gate.exited", T0 + 3 * H + 5, "v1", event_id=i) for i in ("x1", old)]  # again and again
    events = [
        event("gate.exited", T0 + 3 * H + 5, "v1", event_id="x1"),  # before any new hour
        event("vehicle.arrived", T0 + 3 * H + 6, "v7"),
        *resent,
        *tick(T0 + 49 * H),  # 48 h on: ids forgotten
        *resent,
        event("vehicle.arrived", T0 + 49 * H, "v8"),
        *tick(T0 + 200 * H),  # 7 days and an hour on: vehicles forgotten
        *resent,
    ]
    fold_both(native, python, events)
    assert full(native, SLUG) == python.ports[SLUG].to_state()
    assert native.ports[SLUG].report() == python.ports[SLUG].report()


POOL = ["p0", "p1"]


@settings(max_examples=100, deadline=None)
@given(
    listed=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(POOL)), max_size=10),
    steps=st.lists(st.tuples(st.sampled_from([0, 1, 2, 23, 46, 47, 48]), st.sampled_from(POOL)), max_size=16),
)
def test_ids_listed_anywhere_in_a_loaded_state_are_judged_as_the_python_core_judges_them(listed, steps):
    """Pool ids listed in any of the four hours, any number of times; then the watermark moves on by
    0 to 48 hours at a time, a pool id resent after each move; with a checkpoint after half the steps."""
    state = four_hours()
    for hour, event_id in listed:
        state["id_hours"][hour][1].append(event_id)
    native, python = loaded(state)
    t = T0 + 3 * H
    for i, (hours, event_id) in enumerate(steps):
        if i == len(steps) // 2:
            native, python = loaded_checkpoints(native, python)
        t += hours * H
        fold_both(native, python, [*tick(t), event("scan.completed", t, f"v{i % 3}", event_id=event_id)])
    assert full(native, SLUG) == python.ports[SLUG].to_state()
