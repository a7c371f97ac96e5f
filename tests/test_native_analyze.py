"""`analyze` on the compiled fold: it is the one used when installed, its report is the Python fold's, and
a fault of its own never loses the analysis of a file."""

from __future__ import annotations

import gzip
import io
import logging
import os
import sys

import pytest
from messy import messy_log

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.errors import UserError
from crossing_monitor.logs import native
from crossing_monitor.logs.analyze import analyze_log
from crossing_monitor.logs.files import LogError

CATALOGUE = load_catalogue()


@pytest.fixture(scope="module")
def messy_file(tmp_path_factory):
    lines, _ = messy_log(days=1.0, seed=5)
    path = tmp_path_factory.mktemp("native") / "messy.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(line.rstrip(b"\n") + b"\n" for line in lines)))
    return path


def test_the_compiled_fold_is_installed_by_the_setup_and_chosen():
    """scripts/setup builds it: a machine that ran the set-up folds with it (CI does)."""
    assert native.available(), "crossing_monitor_native is not installed: scripts/setup builds it"


def test_analyze_gives_the_python_folds_report_on_a_messy_compressed_log(messy_file, monkeypatch):
    progress: list[int] = []
    compiled = analyze_log(str(messy_file), CATALOGUE, progress.append)
    monkeypatch.setenv(native.ENV_VAR, "python")
    assert not native.available()
    assert analyze_log(str(messy_file), CATALOGUE) == compiled
    assert progress and progress[-1] == messy_file.stat().st_size  # progress reached the end of the file
    assert sum(compiled["rejected"].values()) > 0 and compiled["ports"]


class PanicException(BaseException):
    """What pyo3 raises for a Rust panic (its name is what the glue recognises)."""


def test_a_fault_of_the_compiled_fold_refolds_the_file_in_python(messy_file, monkeypatch, caplog):
    expected = analyze_log(str(messy_file), CATALOGUE)

    def broken(self, chunk):
        with native._faults():
            raise PanicException("index out of range")

    monkeypatch.setattr(native.NativeFold, "feed", broken)
    with caplog.at_level(logging.WARNING, logger="crossing_monitor.analyze"):
        assert analyze_log(str(messy_file), CATALOGUE) == expected
    assert "compiled fold failed (index out of range)" in caplog.text


def test_a_fault_of_the_compiled_fold_on_stdin_is_one_clear_error(messy_file, monkeypatch):
    def broken(self, chunk):
        with native._faults():
            raise PanicException("index out of range")

    monkeypatch.setattr(native.NativeFold, "feed", broken)
    with open(messy_file, "rb") as stdin:
        monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": stdin})())
        with pytest.raises(LogError, match="CROSSING_MONITOR_FOLD=python"):
            analyze_log("-", CATALOGUE)


def test_folding_on_two_threads_folds_exactly_the_same(messy_file):
    """The parallel fold (analyze uses it when a core is free) against the one-thread fold: chunks of
    1 MB, and of sizes around the 64 KB below which a chunk stays on one thread, cut inside lines."""
    data = gzip.decompress(messy_file.read_bytes())
    for size in (1 << 20, (1 << 16) - 7, (1 << 16) + 13):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        one = native.fold_chunks(chunks, CATALOGUE)
        fold = native.NativeFold(CATALOGUE, parallel=True)
        for chunk in chunks:
            fold.feed(chunk)
        two = fold.monitor_after()
        assert two.report() == one.report()
        assert {s: m.to_state() for s, m in two.ports.items()} == {s: m.to_state() for s, m in one.ports.items()}
        if size == 1 << 20:  # at the compiled thresholds, some runs of 1 MB chunks were split
            assert fold._fold.parallel_runs > 0


def test_analyze_folds_on_the_threads_it_is_told_and_gives_the_same_report(messy_file, monkeypatch):
    reports = {}
    for threads in ("1", "2"):
        monkeypatch.setenv(native.THREADS_VAR, threads)
        assert native.two_threads() is (threads == "2")
        reports[threads] = analyze_log(str(messy_file), CATALOGUE)
    assert reports["2"] == reports["1"]


def test_unset_threads_follow_a_free_core_and_a_bad_value_is_one_clear_error(monkeypatch):
    monkeypatch.delenv(native.THREADS_VAR, raising=False)
    for free in (True, False):
        monkeypatch.setattr(native, "a_core_is_free", lambda free=free: free)
        assert native.two_threads() is free
    monkeypatch.setenv(native.THREADS_VAR, "4")
    with pytest.raises(UserError, match="CROSSING_MONITOR_FOLD_THREADS='4': say auto or 1 or 2"):
        native.two_threads()
    with pytest.raises(UserError, match="CROSSING_MONITOR_FOLD_THREADS"):  # whichever fold would run
        analyze_log("-", CATALOGUE, predictions=io.BytesIO())


@pytest.mark.parametrize(("cores", "others", "load", "free"), [
    (2, 0.0, 5.0, True),  # a busy last minute does not count: what runs now does
    (2, 0.4, 0.0, True),
    (2, 1.0, 0.0, False),
    (4, 2.4, 9.0, True),
    (1, 0.0, 0.0, False),
    (2, None, 0.9, True),  # no /proc/loadavg: the load average says
    (2, None, 1.5, False),
])
def test_a_core_is_free_when_fewer_tasks_run_than_this_process_may_use(monkeypatch, cores, others, load, free):
    monkeypatch.setattr(native.os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    monkeypatch.setattr(native, "others_running", lambda: others)
    monkeypatch.setattr(native.os, "getloadavg", lambda: (load, load, load))
    assert native.a_core_is_free() is free


def test_the_tasks_running_besides_this_one_are_read_from_linux():
    others = native.others_running()
    if not os.path.exists("/proc/loadavg"):
        assert others is None
    else:
        # this test's own process is not counted; fewer others run than there are tasks
        with open("/proc/loadavg") as f:
            total = int(f.read().split()[3].split("/")[1])
        assert others is not None and 0 <= others < total


@pytest.mark.parametrize("value", ["pyhton", "off", "0"])
def test_a_fold_setting_that_is_neither_compiled_nor_python_is_one_clear_error(monkeypatch, value):
    monkeypatch.setenv(native.ENV_VAR, value)
    with pytest.raises(UserError, match=f"CROSSING_MONITOR_FOLD='{value}': say compiled or python"):
        native.available()
    monkeypatch.setenv(native.ENV_VAR, " Python ")
    assert not native.available()
