"""`crossing-monitor demo`, the README's first command, for real: it starts, fills, and stops clean."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import pytest
from workers import free_port, wait_until

from crossing_monitor.catalogue import load_catalogue

pytestmark = pytest.mark.kafka


def _descendants(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,pgid="], capture_output=True, text=True).stdout
    rows = [tuple(map(int, line.split())) for line in out.splitlines() if line.strip()]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent, _ in rows if parent in frontier} - found
        found |= frontier
    return found


def test_demo_fills_every_port_moves_metrics_and_stops_on_sigint(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crossing_monitor",
            "demo",
            "--web-port",
            str(port),
            "--workdir",
            str(tmp_path),
            "--history-hours",
            "96",
            "--speed",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wanted = set(load_catalogue())

        def all_ports_filled():
            return set(httpx.get(base + "/api/ports", timeout=5).json()["ports"]) == wanted

        wait_until(all_ports_filled, 180, "every catalogue port in /api/ports")

        def events_total() -> float:
            text = httpx.get(base + "/metrics", timeout=5).text
            return sum(float(v) for v in re.findall(r"^crossing_events_total\{[^}]*\} (\S+)$", text, re.M))

        first = events_total()
        wait_until(lambda: events_total() > first, 60, "/metrics to move")
        children = _descendants(proc.pid)
        assert children, "the demo started no processes"
    finally:
        os.killpg(proc.pid, signal.SIGINT) if proc.poll() is None else None
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert "Ctrl-C stops everything" in out and "stopped" in out
    left = [p for p in children if subprocess.run(["ps", "-p", str(p)], capture_output=True).returncode == 0]
    assert left == [], f"processes left behind: {left}"
