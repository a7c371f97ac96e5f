"""The sensors' wire format v1 (SPEC §1): parsing and validation of one event.

This is a hot path: `analyze` and the worker run it for every message, so it validates with
plain dict/type checks and converts the timestamp once, to integer microseconds since the epoch
(integers keep every sum exact and independent of the order events arrive in).
"""

from __future__ import annotations

import re
from collections.abc import Container
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Final, NamedTuple

import orjson

EVENT_TYPES: Final = (
    "vehicle.arrived",
    "gate.entered",
    "scan.started",
    "scan.completed",
    "inspection.started",
    "inspection.completed",
    "gate.exited",
)
DIRECTIONS: Final = ("outbound", "inbound")
VEHICLE_CLASSES: Final = ("truck", "bus", "car", "other")
SCAN_RESULTS: Final = ("clear", "flagged")
REJECT_REASONS: Final = ("malformed", "invalid", "unknown_port", "duplicate")

_TYPES = frozenset(EVENT_TYPES)
_DIRECTIONS = frozenset(DIRECTIONS)
_CLASSES = frozenset(VEHICLE_CLASSES)
_RESULTS = frozenset(SCAN_RESULTS)
_REQUIRED_STRINGS = ("lane", "vehicle_id", "sensor_id")

# RFC 3339 date-time: a full date, a time with seconds, an optional fraction and a mandatory offset.
_RFC3339 = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)"
    r"(\.\d{1,9})?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# v1.1: an instant in [2000-01-01T00:00Z, 2100-01-01T00:00Z), so every figure (days, local times) exists
TS_MIN: Final = (datetime(2000, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND
TS_END: Final = (datetime(2100, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND
MAX_CARGO_TONNES: Final = 1000


class Rejection(NamedTuple):
    """Why an input was not accepted: one of REJECT_REASONS, and a human-readable detail."""

    reason: str
    detail: str


class Event(NamedTuple):
    """One valid sensor event; `ts` is event time in integer microseconds since the Unix epoch."""

    event_id: str
    type: str
    ts: int
    port: str
    lane: str
    direction: str
    vehicle_id: str
    vehicle_class: str
    sensor_id: str
    booked: bool | None = None
    result: str | None = None
    cargo_tonnes: float | None = None


def _parse_timestamp_slow(value: str) -> int | None:
    """The full RFC 3339 check and conversion; the fast path falls back to it."""
    if _RFC3339.fullmatch(value) is None:
        return None
    text = value
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    if text[10] != "T":
        text = text[:10] + "T" + text[11:]
    dot = text.find(".", 19)
    if dot != -1:  # Python accepts at most 6 fractional digits: truncate nanoseconds.
        end = len(text) - 6
        if end - dot - 1 > 6:
            text = text[: dot + 7] + text[end:]
    if text[17:19] == "60":  # a leap second counts as the second before it
        text = text[:17] + "59" + text[19:]
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:  # e.g. 31 February
        return None
    return (dt - _EPOCH) // _MICROSECOND


_minute_starts: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM" (naive) -> epoch microseconds
_offsets: dict[str, int] = {"Z": 0, "z": 0}  # "+08:00" -> microseconds east of UTC
_seconds: dict[str, int] = {f":{s:02d}": min(s, 59) * 1_000_000 for s in range(61)}  # leap second: :59
_fractions: dict[str, int] = {"": 0}  # ".fff" -> microseconds
_OFFSET = re.compile(r"[+-]([01]\d|2[0-3]):[0-5]\d")
_MINUTE = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d")
_FRACTION = re.compile(r"\.\d{1,9}")
_CACHE_SIZE = 100_000


def _cached(cache: dict[str, int], key: str, value: int) -> int:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return value


def parse_timestamp(value: str) -> int | None:
    """RFC 3339 with an offset → microseconds since the epoch; None when it is not one.

    Events share minutes and offsets, so each distinct minute, offset and seconds-part is validated
    and converted once and cached; the hot path is three slices and three dictionary look-ups.
    """
    if len(value) < 20:
        return None
    if value[-1] in "Zz":
        offset = value[-1]
        fraction = value[19:-1]
    else:
        offset = value[-6:]
        fraction = value[19:-6]
    minute = value[:16]
    start = _minute_starts.get(minute)
    off = _offsets.get(offset)
    sec = _seconds.get(value[16:19])
    frac = _fractions.get(fraction)
    if start is None or off is None or sec is None or frac is None:
        if start is None:
            if _MINUTE.fullmatch(minute) is None:
                return None
            try:
                naive = datetime(
                    int(minute[:4]),
                    int(minute[5:7]),
                    int(minute[8:10]),
                    int(minute[11:13]),
                    int(minute[14:16]),
                    tzinfo=UTC,
                )
            except ValueError:  # e.g. 30 February
                return None
            start = _cached(_minute_starts, minute, (naive - _EPOCH) // _MICROSECOND)
        if off is None:
            if _OFFSET.fullmatch(offset) is None:
                return None
            sign = -1 if offset[0] == "-" else 1
            off = _cached(_offsets, offset, sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60) * 1_000_000)
        if sec is None:
            return None
        if frac is None:
            if _FRACTION.fullmatch(fraction) is None:
                return None
            frac = _cached(_fractions, fraction, int(fraction[1:7].ljust(6, "0")))
    return start - off + sec + frac


def decode(raw: bytes | str) -> dict | Rejection:
    """JSON text → the event object, or a `malformed` rejection."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("malformed", f"not JSON: {exc}")
    if type(obj) is not dict:
        return Rejection("malformed", f"not a JSON object but {type(obj).__name__}")
    return obj


def _invalid(detail: str) -> Rejection:
    return Rejection("invalid", detail)


_new_event = tuple.__new__
_REQUIRED = itemgetter(
    "event_id", "type", "ts", "port", "lane", "direction", "vehicle_id", "vehicle_class", "sensor_id"
)


def validate(obj: dict, ports: Container[str]) -> Event | Rejection:
    """A decoded object → an Event, or the reason it is `invalid` or of an `unknown_port`.

    The fast path accepts the common, valid event with as few Python operations as possible;
    anything it does not accept at once goes through `_validate_slowly`, which names the reason.
    """
    try:
        event_id, etype, ts_text, port, lane, direction, vehicle_id, vclass, sensor_id = _REQUIRED(obj)
        if (
            etype in _TYPES
            and direction in _DIRECTIONS
            and vclass in _CLASSES
            and port in ports
            and type(event_id) is str
            and type(ts_text) is str
            and type(lane) is str
            and type(vehicle_id) is str
            and type(sensor_id) is str
            and 0 < len(event_id) <= 128
            and lane
            and vehicle_id
            and sensor_id
        ):
            ts = parse_timestamp(ts_text)
            get = obj.get
            booked = get("booked")
            result = get("result")
            cargo = get("cargo_tonnes")
            if (
                ts is not None
                and TS_MIN <= ts < TS_END
                and (booked is None or type(booked) is bool)
                and (result is None and etype != "scan.completed" or type(result) is str and result in _RESULTS)
                and (cargo is None or ((type(cargo) is float or type(cargo) is int) and 0 <= cargo <= MAX_CARGO_TONNES))
            ):
                return _new_event(
                    Event,
                    (event_id, etype, ts, port, lane, direction, vehicle_id, vclass, sensor_id, booked, result, cargo),
                )
    except (KeyError, TypeError):  # a field missing, or an unhashable value where a name belongs
        pass
    return _validate_slowly(obj, ports)


def _validate_slowly(obj: dict, ports: Container[str]) -> Event | Rejection:
    """Field by field, so that a rejection says exactly what is wrong."""
    get = obj.get
    event_id = get("event_id")
    if type(event_id) is not str or not 0 < len(event_id) <= 128:
        return _invalid("event_id must be a string of 1-128 characters")
    etype = get("type")
    if type(etype) is not str or etype not in _TYPES:
        return _invalid(f"type must be one of {', '.join(EVENT_TYPES)}")
    ts_text = get("ts")
    if type(ts_text) is not str:
        return _invalid("ts must be an RFC 3339 string with an offset")
    ts = parse_timestamp(ts_text)
    if ts is None:
        return _invalid(f"ts {ts_text[:40]!r} is not RFC 3339 with an offset")
    if not TS_MIN <= ts < TS_END:
        return _invalid(f"ts {ts_text[:40]!r} is outside 2000-01-01T00:00Z up to 2100-01-01T00:00Z")
    port = get("port")
    if type(port) is not str or not port:
        return _invalid("port must be a non-empty string")
    for name in _REQUIRED_STRINGS:
        value = get(name)
        if type(value) is not str or not value:
            return _invalid(f"{name} must be a non-empty string")
    direction = get("direction")
    if type(direction) is not str or direction not in _DIRECTIONS:
        return _invalid("direction must be 'outbound' or 'inbound'")
    vclass = get("vehicle_class")
    if type(vclass) is not str or vclass not in _CLASSES:
        return _invalid("vehicle_class must be one of truck, bus, car, other")
    booked = get("booked")
    if booked is not None and type(booked) is not bool:
        return _invalid("booked must be true or false")
    result = get("result")
    if etype == "scan.completed":
        if type(result) is not str or result not in _RESULTS:
            return _invalid("result must be 'clear' or 'flagged' on scan.completed")
    elif result is not None and (type(result) is not str or result not in _RESULTS):
        return _invalid("result must be 'clear' or 'flagged'")
    cargo = get("cargo_tonnes")
    if cargo is not None:
        ctype = type(cargo)
        if (ctype is not float and ctype is not int) or not 0 <= cargo <= MAX_CARGO_TONNES:  # NaN fails too
            return _invalid(f"cargo_tonnes must be a finite number from 0 to {MAX_CARGO_TONNES}")
    if port not in ports:
        return Rejection("unknown_port", f"port {port[:64]!r} is not in the catalogue")
    return _new_event(
        Event,
        (
            event_id,
            etype,
            ts,
            port,
            obj["lane"],
            direction,
            obj["vehicle_id"],
            vclass,
            obj["sensor_id"],
            booked,
            result,
            cargo,
        ),
    )


def parse(raw: bytes | str, ports: Container[str]) -> Event | Rejection:
    """One message or log line → an Event, or the Rejection that sends it to the dead letters."""
    obj = decode(raw)
    if type(obj) is Rejection:
        return obj
    return validate(obj, ports)
