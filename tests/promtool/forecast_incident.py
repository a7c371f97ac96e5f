"""Writes forecast_high.test.yml: the promtool test of CrossingWaitForecastHigh, built from the incident
scenario (every outbound lane of Khorgos out from 18:00 for 3 hours, into the evening closure at 21:00).

The simulator's events are folded by the metric core and the figures the worker exports are sampled at
each minute of event time from 17:00: the queue per direction, the forecast wait per direction and the
last hour's average wait. Expected alert times follow from the samples: each alert fires 10 minutes
after its condition became true and stayed true. The test shows the forecast alert firing while the
queue is still under its target, and CrossingQueueBuildUp only later.

    python tests/promtool/forecast_incident.py      (rewrites the .test.yml next to this file)
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from crossing_monitor.core.catalogue import load_catalogue  # noqa: E402
from crossing_monitor.core.monitor import Monitor  # noqa: E402

INCIDENT = "incident=khorgos:outbound-lanes=all@2024-05-01T18:00/3h"
SIM_START = "2024-05-01T06:00:00+08:00"
SERIES_FROM = "2024-05-01T17:00:00+08:00"
MINUTES = 270  # 17:00-21:30
FOR = 10
OUT = HERE / "forecast_high.test.yml"
SELECTOR = 'port="khorgos", direction="{d}", instance="w1", job="crossing-worker"'
MINUTE_US = 60_000_000


def sample() -> dict[str, list[float | None]]:
    """Per minute from SERIES_FROM: queue and forecast per direction, last hour's average wait."""
    from producers.faults import parse_faults
    from producers.run import Run

    catalogue = load_catalogue()
    run = Run(catalogue, ["khorgos"], datetime.fromisoformat(SIM_START), 1.0, faults=parse_faults(INCIDENT))
    monitor = Monitor(catalogue)
    first = int(datetime.fromisoformat(SERIES_FROM).timestamp()) * 1_000_000
    out: dict[str, list[float | None]] = {k: [] for k in ("queue_out", "queue_in", "pred_out", "pred_in", "wait")}
    due = first
    for line in run.lines():
        monitor.process(line)
        m = monitor.ports.get("khorgos")
        while m is not None and m.watermark is not None and m.watermark >= due and len(out["wait"]) <= MINUTES:
            q = m.queue()
            f = m.forecast(q)
            out["queue_out"].append(q["outbound"])
            out["queue_in"].append(q["inbound"])
            out["pred_out"].append(round(f["outbound"]["predicted_wait_seconds"]))
            out["pred_in"].append(round(f["inbound"]["predicted_wait_seconds"]))
            wait = m.last_hour_wait()
            out["wait"].append(None if wait is None else round(wait))
            due += MINUTE_US
        if len(out["wait"]) > MINUTES:
            break
    return out


def humanize(v: float) -> str:
    """Prometheus's humanizeDuration for a whole number of seconds of at least one."""
    s = int(v)
    days, hours, minutes, seconds = s // 86400, s // 3600 % 24, s // 60 % 60, s % 60
    if days:
        return f"{days}d {hours}h {minutes}m {seconds}s"
    if hours:
        return f"{hours}h {minutes}m {seconds}s"
    return f"{minutes}m {seconds}s"


def _first_firing(condition: list[bool]) -> int:
    """The evaluation at which an alert with `for: 10m` on this per-minute condition first fires."""
    run = 0
    for t, ok in enumerate(condition):
        run = run + 1 if ok else 0
        if run > FOR:
            return t
    raise AssertionError("the alert never fires in the sampled series")


def _slope(values: list[float]) -> float:
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    return sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))


def render(s: dict[str, list[float | None]]) -> str:
    target_wait = float(load_catalogue()["khorgos"].targets["wait_minutes"]) * 60
    target_queue = float(load_catalogue()["khorgos"].targets["queue_vehicles"])
    pred, queue = s["pred_out"], s["queue_out"]
    forecast_at = _first_firing([p is not None and p > target_wait for p in pred])
    # CrossingQueueBuildUp (signal queue): above the target and growing over 15 minutes, both window ends
    growing = [t >= 15 and _slope(queue[t - 15 : t + 1]) > 0 and _slope(queue[t - 14 : t + 1]) > 0
               for t in range(len(queue))]
    build_up_at = _first_firing([q > target_queue and g for q, g in zip(queue, growing, strict=True)])  # type: ignore[operator]
    assert forecast_at < build_up_at, (forecast_at, build_up_at)
    assert queue[forecast_at] <= target_queue  # type: ignore[operator]

    def values(xs: list[float | None]) -> str:
        return " ".join("_" if x is None else str(int(x)) for x in xs)

    runbook = (
        'Open the wall display: compare the time to clear with "one more lane" beside it. If lanes are out, call '
        "the port's duty officer to restore them or open a spare lane; if the port closes before the queue can "
        "clear, ask for extended hours or tell the booking desk to move slots to the morning, and warn "
        "approaching hauliers of the wait. The limit is the catalogue's targets.wait_minutes; the forecast "
        "method is docs/forecast.md."
    )
    build_runbook = (
        "Check the wall display for the port: if throughput has dropped, a lane or scanner is likely down (call "
        "the port's duty officer and open a spare lane); if throughput is normal, arrivals exceed capacity (peak "
        "day, a convoy, the neighbour's side slowing handover): extend staffing, ask the booking desk to spread "
        "slots, and warn approaching hauliers. If crossings stopped altogether, the CrossingStalled alert "
        "follows. Thresholds are the catalogue's targets.queue_vehicles and targets.wait_minutes."
    )
    fired = pred[forecast_at]
    q_fired = queue[build_up_at]
    lines = [
        "# GENERATED by `python tests/promtool/forecast_incident.py`: do not edit, regenerate.",
        "# CrossingWaitForecastHigh on the incident scenario: every outbound lane of khorgos out from 18:00",
        "# for 3 h. Test time 0 = 17:00 at the port (the series are the worker's figures, sampled each",
        "# minute of event time). The forecast passes the 13 h limit when a truck joining now can no longer",
        f"# be served before the 21:00 closure: firing at {forecast_at}m with {queue[forecast_at]} vehicles",
        f"# queued; the queue passes its target of {int(target_queue)} later: CrossingQueueBuildUp fires at"
        f" {build_up_at}m.",
        "rule_files:",
        "  - ../../deploy/prometheus/rules/crossing_catalogue.rules.yml",
        "  - ../../deploy/prometheus/rules/crossing_recording.rules.yml",
        "  - ../../deploy/prometheus/rules/crossing_alerts.rules.yml",
        "evaluation_interval: 1m",
        "group_eval_order: [crossing-catalogue, crossing-recording, crossing-alerts]",
        "tests:",
        "  - interval: 1m",
        "    input_series:",
    ]
    for metric, d, key in (
        ("crossing_queue_vehicles", "outbound", "queue_out"),
        ("crossing_queue_vehicles", "inbound", "queue_in"),
        ("crossing_wait_predicted_seconds", "outbound", "pred_out"),
        ("crossing_wait_predicted_seconds", "inbound", "pred_in"),
    ):
        lines += [f"      - series: '{metric}{{{SELECTOR.format(d=d)}}}'", f"        values: '{values(s[key])}'"]
    lines += [
        "      - series: 'crossing_wait_avg_seconds{port=\"khorgos\", instance=\"w1\", job=\"crossing-worker\"}'",
        f"        values: '{values(s['wait'])}'",
        "    alert_rule_test:",
        f"      - eval_time: {forecast_at - 1}m",
        "        alertname: CrossingWaitForecastHigh",
        "        exp_alerts: []",
        f"      - eval_time: {forecast_at}m",
        "        alertname: CrossingWaitForecastHigh",
        "        exp_alerts:",
        "          - exp_labels: {port: khorgos, direction: outbound, severity: warning}",
        "            exp_annotations:",
        "              summary: \"khorgos: a vehicle joining the outbound queue now is forecast to wait"
        f" {humanize(fired)}\"",  # type: ignore[arg-type]
        "              description: >-",
        "                The forecast wait at khorgos (outbound) has stayed above the port's limit of"
        f" {humanize(target_wait)} for 10 minutes: the queue ahead cannot be served at the staffed lanes' rate"
        " before the limit (lanes lost, a surge, or a queue that will stand through the night's closure).",
        f"              runbook: >-\n                {runbook}",
        f"      - eval_time: {forecast_at}m",
        "        alertname: CrossingQueueBuildUp",
        "        exp_alerts: []",
        f"      - eval_time: {build_up_at - 1}m",
        "        alertname: CrossingQueueBuildUp",
        "        exp_alerts: []",
        f"      - eval_time: {build_up_at}m",
        "        alertname: CrossingQueueBuildUp",
        "        exp_alerts:",
        "          - exp_labels: {port: khorgos, direction: outbound, signal: queue, severity: warning}",
        "            exp_annotations:",
        f"              summary: \"khorgos: outbound queue of {q_fired} vehicles and growing\"",
        "              description: >-",
        f"                The outbound queue in front of khorgos holds {q_fired} vehicles, above the port's target of"
        f" {int(target_queue)}, and has kept growing for 10 minutes.",
        f"              runbook: >-\n                {build_runbook}",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(sample()), encoding="utf-8")
    print(f"wrote {OUT}")
