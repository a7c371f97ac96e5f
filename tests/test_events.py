"""The wire format v1 (SPEC §1): what is accepted, and the reason for what is not."""

from __future__ import annotations

import orjson
import pytest
from eventlog import event

from crossing_monitor.core.events import Event, Rejection, _parse_timestamp_slow, parse, parse_timestamp

PORTS = frozenset({"khorgos", "lektse"})


def _parse(obj) -> Event | Rejection:
    return parse(orjson.dumps(obj), PORTS)


def test_a_valid_event_is_parsed_with_event_time_in_microseconds():
    ev = _parse(event("gate.exited", "2023-09-27T08:15:02.123+08:00", "v9", cargo_tonnes=21.5))
    assert isinstance(ev, Event)
    assert ev.ts == 1695773702123000
    assert (ev.type, ev.vehicle_id, ev.cargo_tonnes) == ("gate.exited", "v9", 21.5)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2023-09-27T00:15:02Z", 1695773702000000),
        ("2023-09-27T08:15:02+08:00", 1695773702000000),
        ("2023-09-26T19:15:02-05:00", 1695773702000000),
        ("2023-09-27T05:30:02+05:15", 1695773702000000),
        ("2023-09-27t00:15:02z", 1695773702000000),
        ("2023-09-27 08:15:02+08:00", 1695773702000000),
        ("2023-09-27T08:15:02.5+08:00", 1695773702500000),
        ("2023-09-27T08:15:02.123456789+08:00", 1695773702123456),
    ],
)
def test_timestamps_with_any_offset_mean_the_same_instant(ts, expected):
    assert parse_timestamp(ts) == expected
    assert parse_timestamp(ts) == expected  # second time through the caches
    assert _parse_timestamp_slow(ts) == expected


@pytest.mark.parametrize(
    "ts",
    [
        "2023-09-27T08:15:02",  # naive: no offset
        "2023-09-27T08:15:02.123",
        "2023-09-27",
        "2023-02-30T08:15:02+08:00",
        "2023-09-27T24:15:02+08:00",
        "2023-09-27T08:15+08:00",
        "2023-09-27T08:15:02+0800",
        "2023-09-27T08:15:02.+08:00",
        "27/09/2023 08:15:02 +08:00",
        "",
    ],
)
def test_timestamps_that_are_not_rfc3339_with_offset_are_invalid(ts):
    assert parse_timestamp(ts) is None
    result = _parse(event("gate.exited", ts))
    assert isinstance(result, Rejection) and result.reason == "invalid"
    assert "ts" in result.detail


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"{", b"", b"[1, 2]", b'"a string"', b"42", b"null", b"\xff\xfe"],
)
def test_not_json_or_not_an_object_is_malformed(raw):
    result = parse(raw, PORTS)
    assert isinstance(result, Rejection) and result.reason == "malformed"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": ""}, "event_id"),
        ({"event_id": "x" * 129}, "event_id"),
        ({"event_id": 7}, "event_id"),
        ({"type": "gate.opened"}, "type"),
        ({"type": ["gate.exited"]}, "type"),
        ({"ts": 1695773702}, "ts"),
        ({"port": 3}, "port"),
        ({"lane": None}, "lane"),
        ({"direction": "sideways"}, "direction"),
        ({"direction": {"a": 1}}, "direction"),
        ({"vehicle_id": ""}, "vehicle_id"),
        ({"vehicle_class": "tank"}, "vehicle_class"),
        ({"sensor_id": 12}, "sensor_id"),
        ({"booked": "yes"}, "booked"),
        ({"cargo_tonnes": -1}, "cargo_tonnes"),
        ({"cargo_tonnes": "12"}, "cargo_tonnes"),
        ({"cargo_tonnes": True}, "cargo_tonnes"),
        ({"result": "maybe"}, "result"),
    ],
)
def test_a_field_missing_or_of_the_wrong_type_or_value_is_invalid(change, field):
    result = _parse(event("gate.exited", "2023-09-27T08:15:02+08:00") | change)
    assert isinstance(result, Rejection)
    assert result.reason == "invalid"
    assert field in result.detail


@pytest.mark.parametrize(
    "field", ["event_id", "type", "ts", "port", "lane", "direction", "vehicle_id", "vehicle_class", "sensor_id"]
)
def test_every_required_field_is_required(field):
    obj = event("gate.entered", "2023-09-27T08:15:02+08:00")
    del obj[field]
    result = _parse(obj)
    assert isinstance(result, Rejection) and result.reason == "invalid" and field in result.detail


def test_scan_completed_needs_a_result():
    obj = event("scan.completed", "2023-09-27T08:15:02+08:00")
    assert isinstance(_parse(obj), Event)
    del obj["result"]
    result = _parse(obj)
    assert isinstance(result, Rejection) and result.reason == "invalid" and "result" in result.detail


def test_a_port_not_in_the_catalogue_is_unknown_port():
    result = _parse(event("gate.exited", "2023-09-27T08:15:02+08:00", port="nowhere"))
    assert result == Rejection("unknown_port", "port 'nowhere' is not in the catalogue")


def test_an_invalid_event_of_an_unknown_port_is_invalid_first():
    result = _parse(event("gate.exited", "2023-09-27T08:15:02", port="nowhere"))
    assert isinstance(result, Rejection) and result.reason == "invalid"


def test_unknown_extra_fields_and_nulls_for_optional_ones_are_ignored():
    obj = event("vehicle.arrived", "2023-09-27T08:15:02+08:00", booked=None, plate_colour="blue", temp=3.5)
    ev = _parse(obj)
    assert isinstance(ev, Event) and ev.booked is None
    ev = _parse(event("vehicle.arrived", "2023-09-27T08:15:02+08:00", booked=True))
    assert ev.booked is True


from datetime import datetime  # noqa: E402

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TS_ALPHABET = "0123456789-:T Zz.+tx"


@given(st.text(alphabet=_TS_ALPHABET, min_size=18, max_size=36))
def test_the_cached_timestamp_parser_agrees_with_the_full_rfc3339_one_on_any_text(text):
    assert parse_timestamp(text) == _parse_timestamp_slow(text)


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    st.sampled_from(["Z", "+08:00", "-03:30", "+05:45"]),
    st.sampled_from(["", ".5", ".123", ".123456"]),
)
def test_the_cached_timestamp_parser_agrees_on_real_timestamps(dt, offset, fraction):
    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset
    assert parse_timestamp(text) == _parse_timestamp_slow(text) is not None


@pytest.mark.parametrize(
    ("ts", "valid"),
    [
        ("2000-01-01T00:00:00Z", True),
        ("2000-01-01T08:00:00+08:00", True),  # the same instant
        ("2000-01-01T07:59:59.999+08:00", False),  # a millisecond before 2000-01-01T00:00Z
        ("1999-12-31T23:59:59Z", False),
        ("2099-12-31T23:59:59.999999Z", True),
        ("2100-01-01T00:00:00Z", False),
        ("2099-12-31T20:00:00-04:00", False),  # 2100-01-01T00:00Z
        ("9999-12-31T23:59:59-12:00", False),  # would be year 10000 in UTC
        ("0001-01-01T00:00:00+14:00", False),  # would be year 0 in UTC
    ],
)
def test_ts_must_be_an_instant_from_2000_up_to_2100(ts, valid):
    result = _parse(event("gate.exited", ts))
    if valid:
        assert isinstance(result, Event)
    else:
        assert isinstance(result, Rejection) and result.reason == "invalid" and "ts" in result.detail


@pytest.mark.parametrize(
    ("cargo", "valid"),
    [(0, True), (1000, True), (1000.0, True), (999.5, True), (1000.001, False), (1e308, False), (10**400, False),
     (float("inf"), False), (float("nan"), False), (-0.5, False)],
)
def test_cargo_tonnes_must_be_finite_and_at_most_1000(cargo, valid):
    from crossing_monitor.core.events import validate

    result = validate(event("gate.exited", "2023-09-27T08:15:02+08:00", cargo_tonnes=cargo), PORTS)
    if valid:
        assert isinstance(result, Event) and result.cargo_tonnes == cargo
    else:
        assert isinstance(result, Rejection) and result.reason == "invalid" and "cargo_tonnes" in result.detail
    if cargo == 1e308:  # the poison event of issue 12, as it comes over the wire
        wire = _parse(event("gate.exited", "2023-09-27T08:15:02+08:00", cargo_tonnes=cargo))
        assert isinstance(wire, Rejection) and wire.reason == "invalid"
