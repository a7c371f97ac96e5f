"""The live worker's Monitor on the compiled fold (NativeMonitor): message for message the Python Monitor's
verdicts, states and figures, and a checkpoint taken mid-way restores a state that goes on exactly so."""

from __future__ import annotations

import orjson
import pytest
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


@pytest.mark.parametrize("breakage", ["version", "vehicle", "sorted"])
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
