"""No message can hurt the core (SPEC §1): any bytes, any JSON, any field of an event changed.

`Monitor.process` never raises, every rejection has one of the reasons of SPEC §2, and the
report (what /api/ports and /metrics are built from) can always be made and encoded afterwards.
"""

from __future__ import annotations

import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.events import REJECT_REASONS, Rejection
from crossing_monitor.core.monitor import Monitor

CAT = load_catalogue()
BASE = {
    "event_id": "e1",
    "type": "gate.exited",
    "ts": "2024-05-01T08:40:00+08:00",
    "port": "khorgos",
    "lane": "L1",
    "direction": "outbound",
    "vehicle_id": "v1",
    "vehicle_class": "truck",
    "sensor_id": "s1",
    "cargo_tonnes": 20.0,
}
ENTERED = {**BASE, "event_id": "e0", "type": "gate.entered", "ts": "2024-05-01T08:10:00+08:00"}
ARRIVED = {**BASE, "event_id": "a0", "type": "vehicle.arrived", "ts": "2024-05-01T08:00:00+08:00", "booked": True}

EDGES = st.sampled_from(  # values at the edges of the contract
    [
        "9999-12-31T23:59:59-12:00",
        "0001-01-01T00:00:00+14:00",
        "2099-12-31T23:59:59.999999Z",
        "2000-01-01T00:00:00Z",
        "1999-12-31T23:59:59.999+00:00",
        "2024-02-30T00:00:00Z",
        "2024-05-01T08:40:00+23:59",
        "2024-05-01T08:40:00.1234567890+08:00",
        1e308,
        -0.0,
        1000,
        1000.0000001,
        2**63,
        "x" * 200,
        "gate.exited",
        "khorgos",
    ]
)
_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40) | EDGES
json_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=8,
)


@st.composite
def messages(draw) -> bytes:
    """Bytes, JSON, or (most often) a valid event with a field or two changed or removed."""
    kind = draw(st.sampled_from(["bytes", "json", "event", "event", "event"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        value = draw(json_values)
    else:
        value = dict(draw(st.sampled_from([BASE, ENTERED, ARRIVED])))
        value["event_id"] = draw(st.text(min_size=1, max_size=8))  # mostly new ids: most events are folded
        for _ in range(draw(st.integers(1, 2))):
            field = draw(st.sampled_from([*sorted(BASE), "booked", "result", "extra"]))
            action = draw(st.sampled_from(["edge", "edge", "any", "drop"]))
            if action == "drop":
                value.pop(field, None)
            else:
                value[field] = draw(EDGES if action == "edge" else json_values)
    return json.dumps(value).encode()  # NaN and huge integers as a sloppy encoder writes them


def check(monitor: Monitor, raw: bytes) -> None:
    result = monitor.process(raw)
    if type(result) is Rejection:
        assert result.reason in REJECT_REASONS and isinstance(result.detail, str) and result.detail


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=8))
def test_any_messages_never_raise_and_every_rejection_has_a_reason(raws):
    monitor = Monitor(CAT)
    for good in (ARRIVED, ENTERED):  # a vehicle under way, so that odd exits meet real state
        monitor.process(orjson.dumps(good))
    for raw in raws:
        check(monitor, raw)
    orjson.dumps(monitor.report())  # the figures can still be served
    assert sum(monitor.rejected.values()) <= len(raws)
