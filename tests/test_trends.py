"""Trend series of the core (crossing_monitor/core/trends.py): quarter-hour buckets of event time."""

from __future__ import annotations

import random
from datetime import datetime

from eventlog import crossing, event, lines

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.metrics import PortMetrics
from crossing_monitor.core.monitor import Monitor

CATALOGUE = load_catalogue()


def _run(evs) -> dict:
    monitor = Monitor(CATALOGUE)
    monitor.process_all(lines(evs))
    return monitor.report()["ports"]["khorgos"]


def _day(n: int) -> list[dict]:
    """n vehicles, one every 10 minutes from 06:00, each queueing 20 min, exiting 40 min after arrival."""
    evs = []
    for i in range(n):
        h, m = divmod(6 * 60 + 10 * i, 60)
        hh, mm = divmod(h * 60 + m + 20, 60)
        xh, xm = divmod(h * 60 + m + 40, 60)
        evs += crossing(f"v{i}", f"2023-09-27T{h:02d}:{m:02d}:00+08:00", f"2023-09-27T{hh:02d}:{mm:02d}:00+08:00",
                        f"2023-09-27T{xh:02d}:{xm:02d}:00+08:00")
    return sorted(evs, key=lambda e: e["ts"])  # as the sensors send them


def test_crossings_per_quarter_hour_of_event_time_over_the_last_12_hours():
    report = _run(_day(30))  # arrivals 06:00..10:50, exits 06:40..11:30
    t = report["trends"]
    assert t["quarter_seconds"] == 900 and len(t["crossings"]) == 48
    wm = datetime.fromisoformat(report["watermark"]).timestamp()
    end = t["start_unix"] + 48 * 900
    exits = [datetime.fromisoformat(e["ts"]).timestamp() for e in _day(30) if e["type"] == "gate.exited"]
    assert sum(t["crossings"]) == sum(x < end for x in exits) > 0, "exits up to the watermark's quarter"
    assert t["start_unix"] + 47 * 900 <= wm < t["start_unix"] + 48 * 900, "the last bucket holds the watermark"
    # a vehicle exits every 10 min: 1 or 2 per quarter, never more, none before 06:40
    first = int((datetime.fromisoformat("2023-09-27T06:40:00+08:00").timestamp() - t["start_unix"]) // 900)
    assert all(n == 0 for n in t["crossings"][:first]) and set(t["crossings"][first:]) <= {1, 2}


def test_samples_queue_and_wait_at_each_quarter_close():
    report = _run(_day(30))
    s = report["trend_samples"]
    assert len(s["queue"]["outbound"]) == len(s["queue"]["inbound"]) == len(s["wait_seconds"]) == 48
    closed = [q for q in s["queue"]["outbound"] if q is not None]
    assert closed and max(closed) == 2  # 20 min in the queue, one arrival per 10 min: 2 at most
    assert all(q in (0, None) for q in s["queue"]["inbound"])
    assert 1200.0 in s["wait_seconds"]  # the last hour's average wait is 20 min once waits are paired
    assert s["queue"]["outbound"][-1] is None, "the watermark's own quarter has not closed"


def test_crossings_order_independent_and_old_buckets_dropped():
    evs = _day(30)
    shuffled = evs[:]
    random.Random(7).shuffle(shuffled)
    assert _run(shuffled)["trends"] == _run(evs)["trends"]
    # a day later (two sensors, so the watermark is settled), the old quarters leave the state
    late = [event("gate.exited", "2023-09-28T12:00:00+08:00", "late1", sensor_id="a"),
            event("gate.exited", "2023-09-28T12:00:00+08:00", "late2", sensor_id="b")]
    m = PortMetrics("khorgos", "Asia/Shanghai")
    monitor = Monitor(CATALOGUE)
    monitor.process_all(lines(evs + late))
    m = monitor.ports["khorgos"]
    assert sum(m.trends.crossings.values()) == 2 and len(m.trends.crossings) == 1
    assert m.report()["trends"]["crossings"][-1] == 2


def test_trends_survive_a_snapshot():
    monitor = Monitor(CATALOGUE)
    monitor.process_all(lines(_day(12)))
    m = monitor.ports["khorgos"]
    again = PortMetrics.from_state(m.to_state())
    assert again.report() == m.report()
    state = m.to_state()
    del state["trends"]  # a snapshot from before trends: empty series, nothing fails
    assert sum(PortMetrics.from_state(state).report()["trends"]["crossings"]) == 0
