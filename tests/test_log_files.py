"""A recorded line reads back with the worker's verdict on its message; `analyze -` reads gzip.

The worker judges a message's value (a tombstone as b""); `analyze` judges the lines of a log,
skipping blank ones. `message_line` is what `record` writes for a message, so that the two agree
on every message, whatever its bytes.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tricky import PRETTY, TRICKY, VALID

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.logs.analyze import analyze_log
from crossing_monitor.logs.files import GZIP_MAGIC, TOMBSTONE, message_line

CAT = load_catalogue()


def worker_report(values: list[bytes | None]) -> dict:
    """What the worker counts: every message's value (a tombstone's is b"")."""
    monitor = Monitor(CAT)
    monitor.process_all(b"" if v is None else v for v in values)
    return monitor.report()


def recorded_report(values: list[bytes | None], path) -> dict:
    """What analyze counts in the log that record writes for these messages."""
    path.write_bytes(b"".join(message_line(v) + b"\n" for v in values))
    return analyze_log(str(path), CAT)


def test_tricky_messages_are_one_line_each_and_counted_as_the_worker_counts_them(tmp_path):
    lines = [message_line(v) for v in TRICKY]
    assert all(b"\n" not in line and line.strip() for line in lines)
    assert lines[0] == PRETTY.replace(b"\n", b" ")  # nothing but the line ends changed
    assert lines[2] == TOMBSTONE
    assert [message_line(v) for v in VALID] == VALID  # the common case: as sent
    values = VALID + TRICKY
    expected = worker_report(values)
    assert expected["rejected"]["malformed"] == 9 and expected["rejected"]["duplicate"] == 1  # the test's premise
    assert expected["ports"]["khorgos"]["crossings"] == 2
    assert recorded_report(values, tmp_path / "tricky.jsonl") == expected


def test_a_log_whose_first_message_looks_like_gzip_is_still_read_as_lines(tmp_path):
    values = [GZIP_MAGIC + b"junk", *VALID]
    assert recorded_report(values, tmp_path / "first.jsonl") == worker_report(values)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


@st.composite
def messages(draw) -> bytes | None:
    """Any bytes, JSON over several lines, events with a field changed, tombstones."""
    kind = draw(st.sampled_from(["bytes", "json", "event", "tombstone"]))
    if kind == "tombstone":
        return None
    if kind == "bytes":
        return draw(st.binary(max_size=40) | st.text(alphabet=' \n\r\t\\!{}[]":,ab1', max_size=30).map(str.encode))
    if kind == "json":
        return _dumps(draw(_json_values), draw(st.booleans()))
    obj = orjson.loads(draw(st.sampled_from(VALID)))
    obj[draw(st.sampled_from(sorted(obj)))] = draw(_json_values)
    return _dumps(obj, draw(st.booleans()))


def _dumps(value: object, pretty: bool) -> bytes:
    """JSON as any encoder may write it: NaN, huge integers and lone surrogates included."""
    return json.dumps(value, indent=2 if pretty else None).encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(messages(), max_size=12))
def test_any_messages_are_counted_in_the_recording_as_the_worker_counts_them(tmp_path, values):
    assert recorded_report(values, tmp_path / "any.jsonl") == worker_report(values)


def _analyze_stdin(chunks: list[bytes]) -> dict:
    """`crossing-monitor analyze -` fed through a pipe, chunk by chunk (a pause between them)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "crossing_monitor", "analyze", "-", "--format", "json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    for chunk in chunks:
        proc.stdin.write(chunk)
        proc.stdin.flush()
        time.sleep(0.2)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    return orjson.loads(out)


def test_analyze_of_gzip_on_standard_input_reads_the_events(tmp_path):
    values = VALID + TRICKY
    data = b"".join(message_line(v) + b"\n" for v in values)
    expected = worker_report(values)
    packed = gzip.compress(data)
    assert _analyze_stdin([packed[:1], packed[1:]]) == expected  # the magic split across two reads
    assert _analyze_stdin([data[:1], data[1:]]) == expected  # plain lines still read as they are
