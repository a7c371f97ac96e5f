"""`crossing-monitor analyze`: the JSON of SPEC §3 from a log file, and clear errors."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from eventlog import crossing, event, write_log

from crossing_monitor.cli import main

SPEC_PORT_KEYS = [
    "crossings", "cargo_tonnes", "days", "peak_day", "watermark", "throughput_per_hour",
    "avg_inspection_seconds", "last_hour_avg_inspection_seconds", "avg_wait_seconds",
    "last_hour_avg_wait_seconds", "queue",
    # contract 1.1
    "avg_wait_seconds_by_booking", "avg_clearance_seconds", "last_hour_avg_clearance_seconds", "scans",
    "lanes_in_use", "forecast",
]
# Beyond the contract, after its keys: the wall's 12-hour series (crossing_monitor.core.trends).
EXTRA_PORT_KEYS = ["trends", "trend_samples"]


def sample_events():
    return (
        crossing("a", "2023-09-27T09:00:00+08:00", "2023-09-27T09:10:00+08:00", "2023-09-27T09:28:00+08:00",
                 cargo_tonnes=20.5)
        + crossing("b", "2023-09-27T09:05:00+08:00", None, None, direction="inbound")
        + [event("scan.completed", "2023-09-27T09:28:00+08:00", "a", result="flagged")]  # confirms the watermark
        + [b"garbage", b"", event("gate.exited", "2023-09-27T09:30:00+08:00", "c", port="moon")]
    )


def run_json(capsys, *argv) -> dict:
    assert main(["analyze", *argv, "--format", "json"]) == 0
    return orjson.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["day.jsonl", "day.jsonl.gz"])
def test_analyze_prints_the_spec_json(tmp_path, capsys, name):
    path = write_log(tmp_path / name, sample_events())
    out = run_json(capsys, path)
    assert list(out) == ["ports", "rejected"]
    port = out["ports"]["khorgos"]
    assert list(port) == SPEC_PORT_KEYS + EXTRA_PORT_KEYS
    assert port["crossings"] == 1 and port["cargo_tonnes"] == 20.5
    assert port["days"] == {"2023-09-27": {"crossings": 1, "cargo_tonnes": 20.5,
                                           "avg_inspection_seconds": {"all": 1080.0, "truck": 1080.0},
                                           "avg_wait_seconds": 600.0,
                                           "avg_wait_seconds_by_booking": {"booked": None, "walk_up": 600.0},
                                           "avg_clearance_seconds": {"outbound": {"all": 1680.0, "truck": 1680.0},
                                                                     "inbound": {"all": None}},
                                           "scans": {"completed": 1, "flagged": 1}}}
    assert port["peak_day"] == {"date": "2023-09-27", "crossings": 1}
    assert port["watermark"] == "2023-09-27T09:28:00+08:00"
    assert port["throughput_per_hour"] == 1
    assert port["avg_inspection_seconds"] == {"all": 1080.0, "truck": 1080.0}
    assert port["avg_wait_seconds"] == 600.0
    assert port["queue"] == {"outbound": 0, "inbound": 1}
    assert port["avg_clearance_seconds"] == port["last_hour_avg_clearance_seconds"] == {
        "outbound": {"all": 1680.0, "truck": 1680.0}, "inbound": {"all": None}}
    assert port["scans"] == {"completed": 1, "flagged": 1}
    assert port["lanes_in_use"] == {"outbound": 1, "inbound": 0}
    # inbound: one queued, nobody entered in the last hour: no time to clear; one more lane clears it at 20
    # vehicles an hour (3 min each). It has waited 23 min at an open port whose lanes let nobody in: the forecast
    # holds the lanes shut for the next hour (core/forecast.py), so a newcomer waits a little over an hour.
    inbound_wait = port["forecast"]["inbound"].pop("predicted_wait_seconds")
    assert 3600 <= inbound_wait <= 3600 + 600
    assert port["forecast"] == {
        "outbound": {"entries_per_hour": 1, "clear_seconds": 0.0, "clear_seconds_one_more_lane": 0.0,
                     "predicted_wait_seconds": 0.0},
        "inbound": {"entries_per_hour": 0, "clear_seconds": None, "clear_seconds_one_more_lane": 180.0},
    }
    # the blank line is no event; the rest are counted
    assert out["rejected"] == {"malformed": 1, "invalid": 0, "unknown_port": 1, "duplicate": 0}


def test_compression_is_recognised_by_content_not_name(tmp_path, capsys):
    plain = write_log(tmp_path / "a.jsonl", sample_events())
    disguised = tmp_path / "b.jsonl"
    disguised.write_bytes(gzip.compress(Path(plain).read_bytes()))
    assert run_json(capsys, plain) == run_json(capsys, str(disguised))


def test_table_format_is_readable(tmp_path, capsys):
    path = write_log(tmp_path / "day.jsonl", sample_events())
    assert main(["analyze", path]) == 0
    out = capsys.readouterr().out
    assert "khorgos" in out and "2023-09-27" in out and "malformed 1" in out
    for column in ("clearance", "predicted wait", "to clear", "+1 lane", "flagged", "lanes in use"):
        assert column in out
    row = next(line for line in out.splitlines() if "khorgos" in line)
    assert "28.0/–" in row  # clearance of the one outbound truck: 09:00 → 09:28; no inbound one
    assert "100.0%" in row and "1/0" in row  # its one scan was flagged; one outbound lane in use


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: str(p / "missing.jsonl"), "no such file"),
        (lambda p: str(p), "is a directory"),
        (lambda p: (p / "bad.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00broken") and str(p / "bad.jsonl.gz"),
         "unreadable"),
    ],
)
def test_a_missing_or_unreadable_log_is_one_line_and_exit_2(tmp_path, make, message):
    path = make(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "crossing_monitor", "analyze", path, "--format", "json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in proc.stderr


def test_a_bad_argument_is_reported_without_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "crossing_monitor", "analyze", "x", "--format", "xml"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "invalid choice: 'xml'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_broken_catalogue_is_one_line(tmp_path):
    bad = tmp_path / "ports.toml"
    bad.write_text("[khorgos]\nname = 'K'\n")
    log = write_log(tmp_path / "l.jsonl", sample_events())
    proc = subprocess.run([sys.executable, "-m", "crossing_monitor", "analyze", log, "--catalogue", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "has no 'neighbour'" in proc.stderr and "Traceback" not in proc.stderr


def test_analyze_reads_standard_input(tmp_path):
    log = write_log(tmp_path / "l.jsonl", sample_events())
    with open(log, "rb") as f:
        proc = subprocess.run([sys.executable, "-m", "crossing_monitor", "analyze", "-", "--format", "json"],
                              stdin=f, capture_output=True, timeout=60)
    assert proc.returncode == 0
    assert orjson.loads(proc.stdout)["ports"]["khorgos"]["crossings"] == 1
