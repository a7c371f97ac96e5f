"""`crossing-monitor demo`, the README's first command, for real: it starts, fills, and stops clean."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from workers import free_port, wait_until

from crossing_monitor.core.catalogue import load_catalogue

pytestmark = pytest.mark.kafka


def _descendants(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,pgid="], capture_output=True, text=True).stdout
    rows = [tuple(map(int, line.split())) for line in out.splitlines() if line.strip()]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent, _ in rows if parent in frontier} - found
        found |= frontier
    return found


def _speed_reaching_open_hours(catalogue, seconds: float = 20.0, at_least: float = 60.0) -> float:
    """A --speed at which the live traffic (after the history) reaches, within `seconds`, an hour when
    some port is open: the simulator's ports admit nobody while closed (most close at night), so at
    night the figures move only thanks to the ports open round the clock, if the catalogue has any."""
    now = datetime.now(UTC)
    minutes = 0
    while minutes < 7 * 24 * 60:
        moment = now + timedelta(minutes=minutes)
        if any(p.hours.is_open(moment.astimezone(p.tz)) for p in catalogue.values()):
            break
        minutes += 5
    return at_least if minutes == 0 else max(at_least, (minutes + 30) * 60 / seconds)


def test_demo_fills_every_port_moves_metrics_and_stops_on_sigint(tmp_path):
    port = free_port()
    # 96 h of history: the smallest port (3 vehicles a day, open 9 h a day) shows up whatever the hour.
    speed = _speed_reaching_open_hours(load_catalogue())
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
            f"{speed:g}",
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


def _start_demo(tmp_path, *options: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    with open(tmp_path / "demo.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crossing_monitor", "demo", "--web-port", str(port), "--workdir", str(tmp_path),
             *options],
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    return proc, port


def _wait_for_banner(proc: subprocess.Popen, tmp_path) -> None:
    """Read the demo's stdout up to its banner: by then every child it runs has been started."""
    for line in iter(proc.stdout.readline, b""):
        if b"crossing-monitor demo is running" in line:
            return
    said = (tmp_path / "demo.err").read_text(errors="replace")[-3000:]
    raise AssertionError(f"the demo ended before its banner (exit {proc.wait(5)}):\n{said}")


def _alive(pids: set[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(") ", 1)[1][0] != "Z":  # a zombie has ended
                    alive.append(pid)
        except OSError:
            pass
    return alive


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


def _children_end(children: set[int], within: float) -> list[int]:
    commands = {pid: _command(pid) for pid in children}  # read now: a survivor's name says which one hangs
    try:
        wait_until(lambda: not _alive(children), within, f"the demo's children {sorted(children)} to end")
    except AssertionError:
        survivors = "; ".join(f"{pid} {commands[pid]}" for pid in _alive(children))
        raise AssertionError(f"still running after {within:.0f} s: {survivors}") from None
    return _alive(children)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_the_demo_stops_everything_it_started_on_sigterm_and_sighup(tmp_path, sig):
    proc, _ = _start_demo(tmp_path)
    try:
        _wait_for_banner(proc, tmp_path)
        children = _descendants(proc.pid)
        assert len(children) >= 3, "worker, traffic and the broker at least"
        proc.send_signal(sig)
        assert proc.wait(60) == 0
        assert _children_end(children, 15) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_demo_killed_outright_takes_its_children_with_it(tmp_path):
    """SIGKILL cannot be caught: the children's parent-death signal stops them."""
    proc, _ = _start_demo(tmp_path)
    children: set[int] = set()
    try:
        _wait_for_banner(proc, tmp_path)
        children = _descendants(proc.pid)
        assert len(children) >= 3
        proc.kill()
        proc.wait(10)
        # on a loaded machine (load average 5-10) their ends took over 60 s once
        assert _children_end(children, 120) == []
    finally:
        for pid in _alive(children):
            os.kill(pid, signal.SIGKILL)


def test_the_demo_notices_a_closed_stdout(tmp_path):
    """`crossing-monitor demo | head -n 3`: once head has gone, the demo stops and cleans up."""
    proc, _ = _start_demo(tmp_path)
    try:
        _wait_for_banner(proc, tmp_path)
        children = _descendants(proc.pid)
        proc.stdout.close()  # the reader goes away, as head does after its lines
        assert proc.wait(60) == 0
        assert _children_end(children, 15) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.timeout(2400)
def test_the_demos_incident_fires_the_queue_alert_and_it_reaches_the_webhook(tmp_path):
    """The README's promise for the demo: within its first minutes an incident builds a queue past the
    port's target, CrossingQueueBuildUp fires (it needs 10 wall-clock minutes of a growing queue above
    the target) and Alertmanager delivers it to the webhook. Slow by nature: it runs the demo as it is."""
    import json
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    # from the last 11:00 in Beijing (a busy hour: at night every busy port is closed, and no incident
    # can be staged then), whatever the hour the test runs at
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    busy = now.replace(hour=11, minute=0, second=0, microsecond=0)
    busy -= timedelta(days=1) if busy > now else timedelta(0)
    proc, port = _start_demo(tmp_path, "--now", busy.isoformat())
    try:
        _wait_for_banner(proc, tmp_path)
        banner = b""
        while b"Logs" not in banner:
            banner += proc.stdout.readline()
        match = re.search(rb"Incident +incident (\w+):", banner)
        assert match, f"the banner names no incident:\n{banner.decode()}"
        incident_port = match[1].decode()
        target = load_catalogue()[incident_port].targets["queue_vehicles"]
        base = f"http://127.0.0.1:{port}"

        def queue_past_target() -> bool:
            queue = httpx.get(f"{base}/api/ports/{incident_port}", timeout=5).json()["queue"]
            return max(queue.values()) > target

        wait_until(queue_past_target, 15 * 60, f"the {incident_port} queue to pass its target of {target}", 5)

        def alert_delivered() -> bool:
            path = tmp_path / "alerts.jsonl"
            if not path.exists():
                return False
            for line in path.read_text().splitlines():
                payload = json.loads(line)["payload"]
                for alert in payload.get("alerts", []):
                    labels = alert["labels"]
                    if (labels.get("alertname"), labels.get("port"), alert.get("status")) == (
                        "CrossingQueueBuildUp",
                        incident_port,
                        "firing",
                    ):
                        return True
            return False

        wait_until(alert_delivered, 20 * 60, f"CrossingQueueBuildUp for {incident_port} at the webhook", 5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(90)
