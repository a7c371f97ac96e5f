"""The compiled fold held to the Python core (issue 16): `fold_chunks` (crossing_monitor/logs/native.py)
must give, for any log cut into chunks anywhere, what the Python Monitor gives when it is fed the same
log line by line as `analyze` reads a file: the same rejected counts, the same ports, each port's state
(`PortMetrics.to_state`) and figures (`report`, trend_samples included) the same, types included.

The Python core is the oracle: no expected figure is written here. The inputs are generated logs
(late, resent and conflicting events, pruning horizons, midnights), the messy and simulated logs, and
the lines at every boundary of the wire format where a hand-written parser could judge otherwise than
`crossing_monitor.core.events`.
"""

from __future__ import annotations

import io
import itertools
import json
import os
from collections.abc import Iterable
from typing import Any

import eventlog
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from messy import START as MESSY_START
from messy import messy_log
from test_fuzz_core import messages as fuzzed_messages
from test_properties import OFFSETS, START, _ts, messy_logs

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.events import EVENT_TYPES
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.logs.native import _native, fold_chunks
from producers.faults import Faults
from producers.run import Run

CATALOGUE = load_catalogue()


def examples(default: int) -> settings:
    """Hypothesis settings; PROPERTY_EXAMPLES asks for more (generating a messy log costs more than folding it)."""
    n = int(os.environ.get("PROPERTY_EXAMPLES", default))
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])


MB = 1 << 20


# ---- the comparison -----------------------------------------------------------------------


def reference(data: bytes) -> Monitor:
    """The Python core fed the log line by line, as `analyze` reads a file (a line ends at b"\\n")."""
    monitor = Monitor(CATALOGUE, skip_blank=True)
    for line in io.BytesIO(data):
        monitor.process(line)
    return monitor


def snapshot(monitor: Monitor) -> dict[str, Any]:
    """All that the two folds must agree on: counts, ports, their states and figures, the printed report."""
    report = monitor.report()
    return {
        "rejected": monitor.rejected,
        "ports": sorted(monitor.ports),
        "state": {slug: port.to_state() for slug, port in monitor.ports.items()},
        "report": report,  # report()["ports"][slug] is ports[slug].report()
        "printed": orjson.dumps(report),  # what analyze prints: key order, -0.0 and 1 vs 1.0 included
    }


def first_difference(got: Any, want: Any, path: str = "") -> str | None:
    """Where two JSON-like values differ, or None; types count (1 and 1.0, a list and a tuple differ)."""
    if type(got) is not type(want):
        return f"{path}: {type(got).__name__} {got!r:.100} != {type(want).__name__} {want!r:.100}"
    if isinstance(want, dict):
        if got.keys() != want.keys():
            return f"{path}: keys only on one side: {sorted(got.keys() ^ want.keys(), key=repr)!r:.200}"
        found = (first_difference(got[k], want[k], f"{path}/{k}") for k in want)
        return next((d for d in found if d is not None), None)
    if isinstance(want, list | tuple):
        if len(got) != len(want):
            return f"{path}: {len(got)} items != {len(want)}"
        found = (first_difference(g, w, f"{path}[{i}]") for i, (g, w) in enumerate(zip(got, want, strict=True)))
        return next((d for d in found if d is not None), None)
    return None if got == want else f"{path}: {got!r:.100} != {want!r:.100}"


def assert_same_fold(
    data: bytes, chunks: Iterable[bytes] | None = None, want: dict | None = None, note: str = ""
) -> None:
    """fold_chunks(chunks) agrees with the reference on `data` (chunks: the whole log in one piece by default;
    `want`: the reference's snapshot when it is already known; `note`: said when they disagree), on one
    thread and on two (every chunk and every run of two events or more split between the threads)."""
    chunks = [data] if chunks is None else list(chunks)
    want = snapshot(reference(data)) if want is None else want
    for parallel in (False, True):
        got = snapshot(fold_chunks(iter(chunks), CATALOGUE, parallel, parallel_from=(1, 2)))
        diff = first_difference(got, want)
        assert diff is None, f"{diff} {note}{' (two threads)' if parallel else ''}"


def log(lines: Iterable[bytes], end: bytes = b"\n") -> bytes:
    return b"".join(line + end for line in lines)


def cut(data: bytes, at: Iterable[int]) -> list[bytes]:
    """`data` in pieces at the given offsets (sorted; a repeated offset makes an empty chunk)."""
    bounds = [0, *sorted(at), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


plain_agrees = _native.plain_agrees if _native is not None else None

# ---- a) generated event sequences -----------------------------------------------------------

HOUR = 3600
DAY = 24 * HOUR
# gaps between a vehicle's events, at each horizon of the core: last hour, ids (48 h), an exited
# vehicle (72 h), the queue (72 h), waits and clearances (7 days), an open vehicle (7 days + 1 h)
GAPS = [0, 1, HOUR - 1, HOUR, HOUR + 1, 48 * HOUR - 1, 48 * HOUR, 48 * HOUR + 1, 72 * HOUR, 72 * HOUR + 1,
        7 * DAY, 7 * DAY + 1, 7 * DAY + HOUR, 7 * DAY + HOUR + 1, 9 * DAY]  # fmt: skip
# instants within a local day (START is a local midnight): midnight, a second either side, quarters
IN_DAY = [0, 1, DAY - 1, 900, 899, 12 * HOUR]
SENSOR_SKEW = {"s1": 0, "s2": 0, "s3": 0, "ahead": 3 * DAY, "behind": -10 * DAY}


@st.composite
def far_apart_logs(draw) -> list[bytes]:
    """Few vehicles and a small pool of event ids over three weeks: every pruning horizon is crossed, an
    id comes back after it was forgotten, a vehicle has several arrivals/entries/exits (retractions),
    sensors run ahead or behind, instants tie and days turn at local midnight."""
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 25))):
        vehicle = f"v{draw(st.integers(0, 4))}"
        port = draw(st.sampled_from(["khorgos", "burang"]))
        direction = draw(st.sampled_from(["outbound", "inbound"]))
        t = START + draw(st.integers(0, 21)) * DAY + draw(st.sampled_from(IN_DAY) | st.integers(0, DAY - 1))
        for kind in draw(st.lists(st.sampled_from(EVENT_TYPES), min_size=1, max_size=5)):
            t += draw(st.sampled_from(GAPS) | st.integers(-HOUR, 3 * HOUR))
            sensor = draw(st.sampled_from(sorted(SENSOR_SKEW)))
            obj = {
                "event_id": draw(st.sampled_from([f"id{k}" for k in range(6)]) | st.just(f"u{len(out)}")),
                "type": kind,
                "ts": _ts(t + SENSOR_SKEW[sensor], draw(st.sampled_from(OFFSETS))),
                "port": port,
                "lane": draw(st.sampled_from(["L1", "L2", "L3"])),
                "direction": direction if draw(st.integers(0, 5)) else draw(st.sampled_from(["outbound", "inbound"])),
                "vehicle_id": vehicle,
                "vehicle_class": draw(st.sampled_from(["truck", "bus", "car", "other"])),
                "sensor_id": sensor,
                "result": draw(st.sampled_from(["clear", "flagged"])),
                "cargo_tonnes": draw(st.sampled_from([0, 0.5, 12.25, 1000])),
            }
            if (booked := draw(st.sampled_from([None, True, False, "absent"]))) != "absent":
                obj["booked"] = booked
            out.append(orjson.dumps(obj))
    return out


@examples(80)
@given(lines=messy_logs())
def test_generated_logs_of_late_resent_and_bad_events_fold_alike(lines):
    assert_same_fold(log(lines))


@examples(120)
@given(lines=far_apart_logs())
def test_generated_logs_across_every_pruning_horizon_fold_alike(lines):
    assert_same_fold(log(lines))


def test_an_arrival_whose_sensor_moves_the_watermark_past_its_vehicle_leaves_one_record_of_it():
    """Found by the search above: the arrival was folded into its vehicle's record after its own sensor had
    pruned it, and a blank record was left beside it; the restored state then failed to report."""
    lines = eventlog.lines([
        eventlog.event("gate.entered", "2023-09-27T00:00:00Z", "other", sensor_id="s1"),
        eventlog.event("vehicle.arrived", "2023-10-17T00:00:00Z", "v0", sensor_id="ahead"),  # watermark: s1's
        eventlog.event("vehicle.arrived", "2023-10-07T00:00:00Z", "v0", sensor_id="s2"),  # 10 days on, v0 pruned
    ])  # fmt: skip
    assert_same_fold(log(lines))


# A vehicle's first events come from the leading sensor ("ahead") while the watermark stays at START, so
# its record is touched in START's hour; then one event of it from a third sensor ("s2") moves the
# watermark past that record's horizon (72 h for a vehicle that exited, 7 days and an hour for one that
# did not), and that very event meets the vehicle forgotten. Its contributions against the old record
# (1 h of wait, inspection or clearance) must then be dropped, and a new record made, as the core does.
OWN_STEP_FORGETS = {
    "arrival after an exit": ([("gate.exited", 5 * DAY)], ("vehicle.arrived", 5 * DAY - HOUR)),
    "entry after an exit": ([("gate.exited", 5 * DAY)], ("gate.entered", 5 * DAY - HOUR)),
    "earlier exit after an entry and exit": (
        [("gate.entered", 5 * DAY - 2 * HOUR), ("gate.exited", 5 * DAY)],
        ("gate.exited", 5 * DAY - HOUR),
    ),
    "exit after an arrival": ([("vehicle.arrived", 7 * DAY)], ("gate.exited", 7 * DAY + HOUR)),
    "entry after an arrival": ([("vehicle.arrived", 7 * DAY)], ("gate.entered", 7 * DAY + HOUR)),
    "scan after an arrival": ([("vehicle.arrived", 7 * DAY)], ("scan.completed", 7 * DAY + HOUR)),
}


@pytest.mark.parametrize("case", sorted(OWN_STEP_FORGETS))
def test_an_event_whose_own_watermark_step_forgets_its_vehicle_meets_a_new_record(case):
    """Two ports with the same story, folded on two threads that swap the ports between the vehicle's
    first events and the one that forgets it (the busier port goes to the first thread: burang is the
    busier one after the line for Python)."""
    leader_events, (last_type, last_at) = OWN_STEP_FORGETS[case]

    def ev(port: str, kind: str, t: int, sensor: str, vehicle: str = "v0") -> dict[str, Any]:
        return eventlog.event(kind, _ts(START + t, "Z"), vehicle, port=port, sensor_id=sensor)

    def setup(port: str) -> list[dict[str, Any]]:
        ticks = [ev(port, "scan.completed", 0, "s1", "tick"), ev(port, "scan.completed", 10 * DAY, "ahead", "tick")]
        return ticks + [ev(port, kind, t, "ahead") for kind, t in leader_events]

    def idle(port: str) -> list[dict[str, Any]]:  # events that move no clock: only make a port the busier
        return [ev(port, "scan.completed", 0, "s1", "tick") for _ in range(4)]

    first = setup("khorgos") + setup("burang") + idle("khorgos")
    second = [ev("burang", last_type, last_at, "s2"), *idle("burang"), ev("khorgos", last_type, last_at, "s2")]
    data = log([*eventlog.lines(first), b"not json", *eventlog.lines(second)])
    want = snapshot(reference(data))
    for port in ("khorgos", "burang"):  # the premise: the record holds the last event only
        record = want["state"][port]["vehicles"]["v0"]
        _touched, arrived, _dir, _booked, entered, exited, _cls, _exit_dir, progressed = record
        times = {"vehicle.arrived": arrived, "gate.entered": entered, "gate.exited": exited}
        assert {k for k, t in times.items() if t is not None} == ({last_type} & times.keys()), record
        assert progressed is (last_type != "vehicle.arrived")
    assert_same_fold(data, want=want, note=case)


# ---- b) the messy log and a simulator log of a few days ------------------------------------


def test_the_messy_log_folds_alike():
    lines, _bad = messy_log()
    assert_same_fold(log(lines))


def test_a_simulated_log_of_four_days_and_four_ports_folds_alike():
    ports = ["khorgos", "lektse", "burang", "gyirong"]
    run = Run(CATALOGUE, ports, MESSY_START, 4.0, seed=3, faults=Faults(duplicates=0.02, missed=0.01, skew=60.0))
    assert_same_fold(log(run.lines()))


# ---- c) lines at the boundaries of the wire format --------------------------------------------


def j(value: Any) -> str:
    """The JSON text of a value."""
    return orjson.dumps(value).decode()


ARRIVED = {
    "event_id": "a0", "type": "vehicle.arrived", "ts": "2024-05-01T08:00:00+08:00", "port": "khorgos",
    "lane": "L1", "direction": "outbound", "vehicle_id": "v-edge", "vehicle_class": "truck", "sensor_id": "s0",
    "booked": True,
}  # fmt: skip
ENTERED = {**ARRIVED, "event_id": "e0", "type": "gate.entered", "ts": "2024-05-01T08:10:00+08:00", "sensor_id": "s1"}
SCANNED = {**ENTERED, "event_id": "sc0", "type": "scan.completed", "ts": "2024-05-01T08:20:00+08:00", "result": "clear"}
EXITED = {**ENTERED, "event_id": "x0", "type": "gate.exited", "ts": "2024-05-01T08:40:00+08:00", "cargo_tonnes": 20.5}
for _e in (ENTERED, SCANNED, EXITED):
    del _e["booked"]
CONTEXT = [orjson.dumps(e) for e in (ARRIVED, ENTERED)]  # a vehicle under way, that edge events meet
_edge_ids = itertools.count()


def edge(base: dict[str, Any] = EXITED, *pairs: tuple[str, str], **fields: str | None) -> bytes:
    """`base` (with an id of its own) written by hand: `fields` replace values by raw JSON text (None drops
    the field), `pairs` (raw key text, raw value text) follow at the end, duplicate keys allowed."""
    texts = {k: j(v) for k, v in base.items()} | {"event_id": j(f"edge-{next(_edge_ids)}")}
    for name, text in fields.items():
        if text is None:
            texts.pop(name, None)
        else:
            texts[name] = text
    items = [*texts.items(), *pairs]
    return ("{" + ",".join(f'"{k}":{v}' for k, v in items) + "}").encode()


def at(ts: str) -> bytes:
    return edge(ts=j(ts))


FRACTIONS = [f"2024-05-01T08:40:00.{'1234567890'[:n]}+08:00" for n in range(1, 11)]
TS_GRAMMAR = [
    "2024-05-01t08:40:00+08:00", "2024-05-01T00:40:00z", "2024-05-01t00:40:00z", "2024-05-01 08:40:00+08:00",
    "2024-05-01_08:40:00+08:00", "2024-05-01T08:40:60+08:00", "2016-12-31T23:59:60Z", "2024-05-01T08:40:61+08:00",
    "2024-05-01T08:60:00+08:00", "2024-05-01T24:00:00+08:00", "2024-05-01T08:40+08:00", "2024-05-01T08:40:00",
    "2024-05-01T08:40:00.+08:00", "2024-05-01T08:40:00,5+08:00", "2024-05-01T08:40:00.999999999Z",
    "2024-05-01T08:40:00.000000+08:00", "2024-05-01T08:40:00+23:59", "2024-05-01T08:40:00-23:59",
    "2024-05-01T08:40:00-00:00", "2024-05-01T08:40:00+00:00", "2024-05-01T08:40:00+24:00",
    "2024-05-01T08:40:00+08:60", "2024-05-01T08:40:00+0800", "2024-05-01T08:40:00+08", "2024-05-01T08:40:00+8:00",
    "2024-05-01T08:40:00+08:00:00", "2024-05-01T08:40:00ZZ", "2024-05-01T08:40:00UTC", " 2024-05-01T08:40:00Z",
    "2024-05-01T08:40:00Z ", "2024-05-01T08:40:00Z\n", "2024-05-01", "20240501T084000Z", "+2024-05-01T08:40:00Z",
    "12024-05-01T08:40:00Z", "2024-5-01T08:40:00Z", "", "Z",
    # non-ASCII digits (Arabic-Indic, full-width) in the year, the fraction, the offset, the seconds
    "٢٠٢٤-05-01T08:40:00Z", "２０２４-05-01T08:40:00Z", "2024-05-01T08:40:00.٥Z", "2024-05-01T08:40:00+٠٨:00",
    "2024-05-01T08:40:0٥Z",
]  # fmt: skip
TS_CALENDAR = [
    "2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z", "2000-02-29T12:00:00Z", "2096-02-29T12:00:00Z",
    "2100-02-29T12:00:00Z", "2024-02-30T12:00:00Z", "2024-04-31T12:00:00Z", "2024-13-01T12:00:00Z",
    "2024-00-10T12:00:00Z", "2024-05-00T12:00:00Z", "2024-12-31T23:59:59+08:00", "2024-12-31T16:00:00Z",
]  # fmt: skip
TS_RANGE = [
    "2000-01-01T00:00:00Z", "1999-12-31T23:59:59.999999Z", "1999-12-31T23:59:59.9999999Z",
    "2000-01-01T08:00:00+08:00", "2000-01-01T07:59:59.999999+08:00", "1999-12-31T20:00:00-04:00",
    "1999-12-31T23:59:60Z", "2099-12-31T23:59:59.999999Z", "2099-12-31T23:59:59.999999999Z",
    "2099-12-31T23:59:60Z", "2100-01-01T00:00Z", "2100-01-01T00:00:00Z", "2100-01-01T07:59:59+08:00",
    "2099-12-31T20:00:00-04:00", "2099-12-31T19:59:59.999999-04:00", "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-12:00",
]  # fmt: skip
TS_EDGES = [at(ts) for ts in FRACTIONS + TS_GRAMMAR + TS_CALENDAR + TS_RANGE] + [
    edge(ts='"2024-05-01T08:40:00\\u005a"'),  # an escaped Z
    edge(ts='"2024-05-01\\u005408:40:00\\u002b08:00"'),  # an escaped T and +
    edge(ts="1714524000"), edge(ts="null"), edge(ts='["2024-05-01T08:40:00Z"]'), edge(ts=None),
]  # fmt: skip

# the valid value of each string field written with escapes, then strings no decoder may accept
ESCAPED = {
    "event_id": '"edge-\\u00e9-\\u00E9"', "type": '"gate.exit\\u0065d"', "port": '"khorgo\\u0073"',
    "lane": '"L\\u0031\\/\\"\\\\\\b\\f\\n\\r\\t\\u0000"', "direction": '"\\u006futbound"',
    "vehicle_id": '"v\\ud83d\\ude00"', "vehicle_class": '"tr\\u0075ck"', "sensor_id": '"s\\u00e9"',
}  # fmt: skip
BAD_STRINGS = ['"\\ud800"', '"x\\udc00"', '"\\ud83d\\u0041"', '"\\x41"', '"\\u12"', '"\\u00e"', '"\\a"']
STRING_EDGES = (
    [edge(**{name: text}) for name, text in ESCAPED.items()]
    + [edge(SCANNED, result='"cl\\u0065ar"'), edge(SCANNED, result='"fl\\u0061gged"')]
    + [edge(**{name: text}) for name in [*ESCAPED, "result"] for text in BAD_STRINGS]
    + [edge(vehicle_id=j("vé")), edge(vehicle_id='"v\\u00e9"')]  # one vehicle, written two ways
)
EVENT_ID_EDGES = [
    edge(event_id=j(text))
    for text in ["é" * 128, "é" * 129, "😀" * 128, "😀" * 129, "e\u0301" * 64, "e\u0301" * 65, "a" * 128, "a" * 129,
                 "", " ", "\x00", "x" * MB]
] + [edge(event_id='"' + "\\ud83d\\ude00" * n + '"') for n in (128, 129)] + [
    edge(event_id="1"), edge(event_id="null"), edge(event_id='["a"]'), edge(event_id=None),
]  # fmt: skip
DUPLICATE_KEYS = [
    edge(EXITED, ("event_id", j("dup-last"))),
    edge(EXITED, ("type", j("nonsense"))),
    edge(EXITED, ("type", j("gate.exited")), type=j("nonsense")),
    edge(EXITED, ("port", j("khorgos")), port=j("moonbase")),
    edge(EXITED, ("port", j("moonbase"))),
    edge(EXITED, ("ts", j("2024-05-01T08:41:00+08:00")), ts=j("not a time")),
    edge(EXITED, ("cargo_tonnes", "5"), cargo_tonnes='"five"'),
    edge(EXITED, ("\\u0074ype", j("gate.entered"))),  # an escaped key is the same key
    edge(EXITED, ("event\\u005fid", j("escaped-key-id"))),
    edge(EXITED, ("p\\u006frt", j("lektse"))),
    edge(EXITED, ("cargo\\u005ftonnes", "1001")),
]
UNKNOWN_FIELDS = [
    edge(EXITED, ("extra", '{"a":[1,{"b":null}],"c":"\\u00e9","d":[true,false,-0.0,1e308]}')),
    edge(EXITED, ("big", "1e400")),
    edge(EXITED, ("big", "-1e400")),
    edge(EXITED, ("tiny", "1e-400")),
    edge(EXITED, ("huge_int", "123456789012345678901234567890")),
    edge(EXITED, ("huge_int", "-9223372036854775809")),
    edge(EXITED, ("", '""')),
    edge(EXITED, ("x", '"' + "y" * MB + '"')),  # a valid event of 1 MB
] + [edge(EXITED, ("deep", "[" * n + "]" * n)) for n in (127, 128, 129, 1022, 1023, 1024)]
BOOKED = [edge(ARRIVED, booked=text) for text in ["0", "1", "null", "true", "false", '"true"', "[]", "{}", None]] + [
    edge(EXITED, booked="true"),
    edge(EXITED, booked="1"),
]
CARGO = [
    edge(cargo_tonnes=text)
    for text in ["7", "-0.0", "-0", "0", "0.0", "1000", "1000.0", "1000.0000001", "1000.00000000000001", "1e3", "1E3",
                 "1e-320", "-1e-320", "1e-400", "999.9999999999999999", '"5"', "true", "false", "null", "-1",
                 "1e400", "NaN", "Infinity", "18446744073709551616", "[]", "{}", "01", "1.", ".5", None]
]  # fmt: skip
RESULTS = (
    [edge(SCANNED, result=text) for text in ['"clear"', '"flagged"', '"Clear"', "null", "1", "true", '["clear"]', None]]
    + [edge(EXITED, result=text) for text in ['"clear"', '"bogus"', "null", "1", "{}"]]
    + [edge(ARRIVED, result='"flagged"'), edge({**ENTERED, "type": "scan.started"}, result='"clear"')]
)
PORTS = [edge(port=text) for text in ['"moonbase"', '""', "1", "null", "true", '["khorgos"]', '{"a":1}',
                                      '"KHORGOS"', '"khorgos "', None]]  # fmt: skip
OTHER_FIELDS = [
    edge(type='["gate.exited"]'), edge(type='"gate.exit"'), edge(type=None), edge(direction='{"x":1}'),
    edge(direction='"Outbound"'), edge(vehicle_class="1"), edge(vehicle_class='"lorry"'), edge(lane='""'),
    edge(lane="1"), edge(vehicle_id='""'), edge(vehicle_id=None), edge(sensor_id="null"), edge(sensor_id='""'),
]  # fmt: skip
GOOD = edge()
WHOLE_LINES = [
    b"\t" + GOOD + b"\r", b" " + GOOD + b" ", b"\x0c" + GOOD, GOOD + b"\x0c", b"\x0b" + GOOD, b"\xef\xbb\xbf" + GOOD,
    GOOD + b"\x00", b"\x00" + GOOD, b"\x00", GOOD + b"\xff", GOOD + GOOD, GOOD + b" x", GOOD + b"\r" + GOOD,
    edge(vehicle_id='"v@"').replace(b"@", b"\xff"),  # invalid UTF-8 in a string
    edge(vehicle_id='"v@"').replace(b"@", b"\xc0\xaf"),  # an overlong encoding
    edge(vehicle_id='"v@"').replace(b"@", b"\xed\xa0\x80"),  # an encoded surrogate
    edge(vehicle_id='"v@"').replace(b"@", b"\xe2\x82"),  # a truncated sequence
    edge(vehicle_id='"v@"').replace(b"@", "😀".encode()),
    edge(vehicle_id='"v@"').replace(b"@", b"\x01"),  # a raw control character in a string
    b"", b"   \t  ", b"\x0b\x0c", b"\r", b" \r ",  # blank: skipped
    b"\x1c", b"\x85", b"\xa0", b"\xc2\xa0", b"\x00 ",  # not blank to bytes.strip: malformed
    b"!tombstone", b"!", b"!back\\\\slash\\n",
    b"[]", b"[1,2]", b"1", b"-0.5", b'"a string"', b"null", b"true", b"{}", b"[" + GOOD + b"]",
    # an event's values as an array, in field order (serde would fill a struct from it: found by review)
    json.dumps(list(EXITED.values())[:9]).encode(), b" " + json.dumps(list(EXITED.values())).encode(),
    b'{"a":1,}', b"{", b"}", b"{oops", b"// a comment", b"{/* c */}",
    json.dumps(EXITED | {"event_id": "spaced"}).encode(),  # spaces between tokens
    json.dumps(EXITED | {"event_id": "nan", "cargo_tonnes": float("nan")}).encode(),  # NaN: not JSON
    b"x" * MB, b'{"a":"' + b"y" * MB,  # 1 MB of garbage, an unterminated 1 MB string
]  # fmt: skip
# the forms the plain reader (the compiled fast path's first look) reads or must leave to serde
REORDERED = [
    b"{" + b",".join(f'"{k}":{j(v)}'.encode() for k, v in reversed(list(base.items()))) + b"}"
    for base in (ARRIVED, ENTERED, SCANNED, EXITED)
]
PLAIN_FORMS = REORDERED + [
    edge(ARRIVED, booked="null"), edge(SCANNED, result="null"), edge(EXITED, ("result", "null")),
    edge(lane='"L\x7f"'), edge(lane='"L\t1"'), edge(lane='"L~"'), edge(sensor_id='"s 1"'),
    GOOD + b"\t", GOOD + b" \r\n", GOOD + b"\r\r", GOOD + b",", GOOD + b"}", b"{" + GOOD[1:-1] + b" }",
    b'{ "event_id"' + GOOD[len(b'{"event_id"'):], GOOD.replace(b'":', b'" :', 1), GOOD.replace(b",", b", ", 1),
    edge(cargo_tonnes="12.50"), edge(cargo_tonnes="0.000"), edge(cargo_tonnes="00.5"), edge(cargo_tonnes="5.e1"),
    edge(cargo_tonnes="999.99999999999999999999"), edge(cargo_tonnes="1" + "0" * 40), edge(cargo_tonnes="+5"),
    edge(cargo_tonnes="1" + "0" * 400), edge(cargo_tonnes="9999.5"), edge(cargo_tonnes="10000"),
]  # fmt: skip
EDGE_GROUPS = {
    "ts": TS_EDGES, "string": STRING_EDGES, "event_id": EVENT_ID_EDGES, "duplicate_key": DUPLICATE_KEYS,
    "unknown_field": UNKNOWN_FIELDS, "booked": BOOKED, "cargo": CARGO, "result": RESULTS, "port": PORTS,
    "field": OTHER_FIELDS, "line": WHOLE_LINES, "plain": PLAIN_FORMS,
}  # fmt: skip
EDGES = [(f"{group}{i}", line) for group, lines in EDGE_GROUPS.items() for i, line in enumerate(lines)]
SHORT_EDGES = [line for _, line in EDGES if len(line) < 10_000]


ELSEWHERE = [orjson.dumps({**ARRIVED, "event_id": f"else-{i}", "port": "lektse", "vehicle_id": f"v-else-{i}"})
             for i in range(2)]  # fmt: skip


@pytest.mark.parametrize("line", [line for _, line in EDGES], ids=[name for name, _ in EDGES])
def test_an_edge_line_is_judged_alike(line):
    """After a vehicle under way, the line and then its resend: valid, duplicate, rejected or skipped alike
    (with another port's events before each, so that on two threads the runs around it are split)."""
    assert_same_fold(log([*CONTEXT, ELSEWHERE[0], line, ELSEWHERE[1], line]), note=f"(line {line[:300]!r})")


def test_the_plain_reader_reads_every_line_as_serde_does_and_the_simulators_lines_itself():
    """The compiled fast path reads a line in the usual form itself and leaves any other to serde: where it
    reads one, it must read serde's fields; and it must read the lines the simulator writes (else it is
    only a detour)."""
    simulated = list(Run(CATALOGUE, list(CATALOGUE), MESSY_START, 1.0, seed=5).lines())
    for line in [*(line for _, line in EDGES), *MESSY_LINES, *simulated]:
        assert plain_agrees(line)[1], line[:300]
    assert all(plain_agrees(line)[0] for line in simulated)
    assert all(plain_agrees(line)[0] for line in REORDERED)


@examples(300)
@given(raw=fuzzed_messages())
def test_the_plain_reader_reads_any_message_as_serde_does(raw):
    assert plain_agrees(raw)[1]


@st.composite
def compact_lines(draw) -> bytes:
    """An event in the compact form the plain reader reads (orjson's), its cargo any digit string, then up
    to three bytes deleted, inserted or replaced anywhere."""
    base = dict(draw(st.sampled_from([ARRIVED, ENTERED, SCANNED, EXITED])))
    keys = list(base)
    line = bytearray(orjson.dumps({k: base[k] for k in draw(st.permutations(keys))}))
    if draw(st.booleans()):
        size = draw(st.sampled_from([1, 2, 4, 5, 16, 17, 308, 309, 310, 400]))
        digits = draw(st.sampled_from("123456789")) + draw(st.text("0123456789", min_size=size - 1, max_size=size - 1))
        digits += draw(st.sampled_from(["", ".5", ".0000000000000000000000001"]))
        line = bytearray(edge(EXITED, cargo_tonnes=digits))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(line)))
        byte = draw(st.sampled_from([*b'"{}:,.\\ 0123456789-+eE\t\r\x7f\x00', 0xC3, 0xA9, ord("a")]))
        match draw(st.sampled_from(["delete", "insert", "replace"])):
            case "delete" if at < len(line):
                del line[at]
            case "replace" if at < len(line):
                line[at] = byte
            case _:
                line.insert(at, byte)
    return bytes(line)


@examples(400)
@given(line=compact_lines())
def test_a_compact_line_with_a_few_bytes_changed_is_read_and_folded_alike(line):
    assert plain_agrees(line)[1], line
    assert_same_fold(log([*CONTEXT, ELSEWHERE[0], line, ELSEWHERE[1]]), note=f"(line {line!r})")


def test_an_error_on_a_folding_thread_comes_out_and_leaves_the_fold_unusable():
    """A port's Python clock fails while two threads fold: its error reaches the caller (no hang, no panic),
    and the fold refuses to go on or to give a state that no fold in log order could have."""
    from crossing_monitor.core.clock import DayClock

    slugs = list(CATALOGUE)
    timezones = [CATALOGUE[s].timezone for s in slugs]

    def broken(first: int, count: int) -> list[str]:
        raise RuntimeError("the lektse clock broke")

    clocks = [broken if s == "lektse" else DayClock(tz).names for s, tz in zip(slugs, timezones, strict=True)]
    fold = _native.Fold(slugs, timezones, clocks, lambda line: None)
    fold.parallel, fold.parallel_bytes, fold.parallel_run = True, 1, 2
    data = log(Run(CATALOGUE, ["khorgos", "lektse"], MESSY_START, 0.5, seed=2).lines())
    with pytest.raises(RuntimeError, match="the lektse clock broke"):
        fold.feed(data)
    for again in (lambda: fold.feed(b""), fold.finish, fold.states, lambda: fold.state("khorgos")):
        with pytest.raises(ValueError, match="this fold failed before"):
            again()


@examples(300)
@given(raws=st.lists(fuzzed_messages(), min_size=1, max_size=8))
def test_any_bytes_any_json_and_events_with_a_field_changed_fold_alike(raws):
    """test_fuzz_core's messages, one a line (a newline inside one makes two lines, as it would in a log)."""
    assert_same_fold(log([*CONTEXT, *raws]))


@pytest.mark.parametrize("end", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_all_edge_lines_in_one_log_fold_alike(end):
    assert_same_fold(log([*CONTEXT, *(line for _, line in EDGES)], end))


# ---- d) chunk boundaries --------------------------------------------------------------------


MESSY_LINES = messy_log(days=0.5, seed=7)[0]


@examples(120)
@given(
    start=st.integers(0, len(MESSY_LINES) - 1),
    count=st.integers(1, 400),
    edges=st.lists(st.sampled_from(SHORT_EDGES), max_size=8),
    data=st.data(),
)
def test_a_log_cut_anywhere_folds_as_the_whole_log(start, count, edges, data):
    """A stretch of the messy log with edge lines spliced in, LF or CRLF, with or without a final newline,
    cut at up to 12 random bytes (two cuts at one byte make an empty chunk)."""
    lines = MESSY_LINES[start : start + count]
    for line in edges:
        lines.insert(data.draw(st.integers(0, len(lines))), line)
    end = data.draw(st.sampled_from([b"\n", b"\r\n"]))
    text = end.join(lines) + data.draw(st.sampled_from([end, b""]))
    assert_same_fold(text, cut(text, data.draw(st.lists(st.integers(0, len(text)), max_size=12))))


LAST_LINES = {
    "valid": edge(),
    "invalid": edge(event_id=j("é" * 129)),
    "malformed": b"{oops",
    "blank": b"  \t",
    "cr": b"\r",
    "resend": CONTEXT[0],
}


@pytest.mark.parametrize("last", list(LAST_LINES.values()), ids=list(LAST_LINES))
def test_a_log_without_final_newline_cut_at_every_byte_of_its_end(last):
    text = log(CONTEXT) + last
    want = snapshot(reference(text))
    for i in range(len(CONTEXT[-1]) - 2, len(text) + 1):  # around the last newline and through the last line
        assert_same_fold(text, [text[:i], text[i:]], want, note=f"(cut at byte {i} of {len(text)})")


def test_a_log_in_one_byte_chunks_with_empty_ones_between():
    text = log([*CONTEXT, *SHORT_EDGES])
    chunks = (piece for i in range(len(text)) for piece in (text[i : i + 1], b""))
    assert_same_fold(text, chunks)
