"""The wall display: one row per port of big numbers, for a 1080p screen across the room.

Layout: a summary bar and one row per port, 3 grid units high each (a unit is 30 px plus an 8 px
gap), so the seven ports of the shipped catalogue and the bar fill 24 units = 904 px: no
scrolling at 1080p in kiosk mode (`/d/crossing-wall?kiosk`). Colour thresholds come from each
port's targets in the catalogue, so a generated panel turns orange and red where the alerts do.
"""

from __future__ import annotations

from typing import Any

from crossing_monitor.core.catalogue import Catalogue, Port
from dashboards.grafana import (
    GREEN,
    GREY,
    ORANGE,
    RED,
    dashboard,
    fixed_color_override,
    grid,
    stat,
    target,
    thresholds,
)

UID = "crossing-wall"
ROW_H = 3
WARN_SHARE = 0.75  # orange from three quarters of a target, red at the target


def figures(slug: str) -> dict[str, tuple[str, str]]:
    """The wall's per-port numbers: name → (PromQL, the matching field of /api/ports/{port}).

    The integration test with a real worker compares each against the API; the panels use the
    same expressions.
    """
    p = f'port="{slug}"'
    return {
        "throughput": (f"max(crossing_throughput_vehicles_per_hour{{{p}}})", "throughput_per_hour"),
        "today": (f"max(crossing_day_vehicles{{{p}}})", "days[watermark day].crossings"),
        "peak": (f"max(crossing_peak_day_vehicles{{{p}}})", "peak_day.crossings"),
        "truck_inspection": (
            f'max(crossing_inspection_avg_seconds{{{p}, vehicle_class="truck"}})',
            "last_hour_avg_inspection_seconds.truck",
        ),
        "queue_outbound": (f'max(crossing_queue_vehicles{{{p}, direction="outbound"}})', "queue.outbound"),
        "queue_inbound": (f'max(crossing_queue_vehicles{{{p}, direction="inbound"}})', "queue.inbound"),
        "wait": (f"max(crossing_wait_avg_seconds{{{p}}})", "last_hour_avg_wait_seconds"),
        "forecast_outbound": (
            f'max(crossing_wait_predicted_seconds{{{p}, direction="outbound"}})',
            "forecast.outbound.predicted_wait_seconds",
        ),
        "forecast_inbound": (
            f'max(crossing_wait_predicted_seconds{{{p}, direction="inbound"}})',
            "forecast.inbound.predicted_wait_seconds",
        ),
    }


def _traffic_light(limit: float) -> dict:
    return thresholds((None, GREEN), (round(limit * WARN_SHARE, 3), ORANGE), (limit, RED))


def port_row(port: Port, y: int) -> list[dict[str, Any]]:
    """The eight panels of one port, left to right (widths 3+3+3+3+3+4+2+3 = 24)."""
    f = figures(port.slug)
    t = port.targets
    p = f'port="{port.slug}"'
    inspection_target = float(t["truck_inspection_minutes"]) * 60
    wait_target = float(t["wait_minutes"]) * 60
    queue_target = float(t["queue_vehicles"])
    h = ROW_H
    return [
        stat(
            f"{port.name} · {port.neighbour}",
            grid(0, y, 3, h),
            [target(f"max(crossing:port_open{{{p}}})", "open", instant=True)],
            description=f"Open {port.hours.open:%H:%M}-{port.hours.close:%H:%M} ({port.timezone}) per the catalogue.",
            mappings=[
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "CLOSED", "color": GREY, "index": 0},
                        "1": {"text": "OPEN", "color": GREEN, "index": 1},
                    },
                }
            ],
            steps=thresholds((None, GREY)),
            no_value="?",
        ),
        stat(
            "Crossings / hour",
            grid(3, y, 3, h),
            [target(f["throughput"][0], "per hour", instant=True)],
            description="Crossings in the 60 minutes ending at the latest event (event time).",
            color_mode="value",
        ),
        stat(
            "Today · record",
            grid(6, y, 3, h),
            [target(f["today"][0], "today", "A", instant=True), target(f["peak"][0], "record", "B", instant=True)],
            description="Crossings on the latest event's day, against the record day so far.",
            color_mode="value",
            text_mode="value_and_name",
            overrides=[fixed_color_override("record", GREY)],
        ),
        stat(
            "Trucks' inspection",
            grid(9, y, 3, h),
            [
                target(f["truck_inspection"][0], "last hour", "A", instant=True),
                target(f"max(crossing:target_truck_inspection_seconds{{{p}}})", "target", "B", instant=True),
            ],
            unit="s",
            decimals=None,
            description="Average entry-to-exit time of the trucks that left in the last hour, against the target.",
            steps=_traffic_light(inspection_target),
            color_mode="value",
            text_mode="value_and_name",
            overrides=[fixed_color_override("target", GREY)],
            no_value="-",
        ),
        stat(
            "Queue",
            grid(12, y, 3, h),
            [
                target(f["queue_outbound"][0], "out", "A", instant=True),
                target(f["queue_inbound"][0], "in", "B", instant=True),
            ],
            description=f"Vehicles waiting in front of the port, per direction; target {queue_target:g}.",
            steps=_traffic_light(queue_target),
            text_mode="value_and_name",
        ),
        stat(
            "Wait · forecast",
            grid(15, y, 4, h),
            [
                target(f["wait"][0], "last hour", "A", instant=True),
                target(f["forecast_outbound"][0], "next out", "B", instant=True),
                target(f["forecast_inbound"][0], "next in", "C", instant=True),
            ],
            unit="s",
            decimals=None,
            description=(
                "Average wait of the vehicles that entered in the last hour, and the forecast wait of a vehicle "
                f"joining each direction's queue now (docs/forecast.md); limit {wait_target / 60:g} min."
            ),
            steps=_traffic_light(wait_target),
            text_mode="value_and_name",
            no_value="-",
        ),
        stat(
            "Out: to clear",
            grid(19, y, 2, h),
            [
                # (not in `figures`: null, and absent in Prometheus, while a queue stands that nobody enters)
                target(f'max(crossing_queue_clear_seconds{{{p}, direction="outbound"}})', "now", "A", instant=True),
                target(
                    f'max(crossing_queue_clear_one_more_lane_seconds{{{p}, direction="outbound"}})',
                    "+1 lane",
                    "B",
                    instant=True,
                ),
            ],
            unit="s",
            decimals=None,
            description="How long the outbound queue takes to clear at the last hour's entry rate, and with one "
            "more lane open.",
            color_mode="value",
            text_mode="value_and_name",
            steps=thresholds((None, GREY)),
            no_value="-",
        ),
        stat(
            "Alerts",
            grid(21, y, 3, h),
            [target(f'count(ALERTS{{alertstate="firing", {p}}}) or vector(0)', "firing", instant=True)],
            description="Alerts firing for this port (Prometheus ALERTS).",
            steps=thresholds((None, GREEN), (1, RED)),
            mappings=[{"type": "value", "options": {"0": {"text": "OK", "index": 0}}}],
        ),
    ]


TREND_TITLES = ("Crossings / hour", "Queue", "Wait")  # the figures the HTML wall draws sparklines under


def with_trends(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 17: the last 12 h as a sparkline behind the throughput, queue and wait figures, as the
    worker's own wall draws them. Range queries over a 12 h panel window, 15-minute steps; the figure
    itself stays the last value. The layout is unchanged, so the wall still fits 1080p."""
    for panel in panels:
        if panel["title"] in TREND_TITLES:
            for t in panel["targets"]:
                t["instant"], t["range"] = False, True
            panel["timeFrom"] = "12h"
            panel["interval"] = "15m"
            panel["hideTimeOverride"] = True
            panel["options"]["graphMode"] = "area"
            panel["description"] += " The line behind: the last 12 hours."
    return panels


def summary_bar() -> list[dict[str, Any]]:
    """Totals across ports and the health of the pipeline (widths 6 x 4 = 24)."""
    h = ROW_H
    return [
        stat(
            "Crossings / hour, all ports",
            grid(0, 0, 4, h),
            [target("sum(port:crossing_throughput_vehicles_per_hour:max)", "per hour", instant=True)],
            color_mode="value",
        ),
        stat(
            "Today, all ports",
            grid(4, 0, 4, h),
            [target("sum(port:crossing_day_vehicles:max)", "today", instant=True)],
            color_mode="value",
        ),
        stat(
            "Alerts firing",
            grid(8, 0, 4, h),
            [target('count(ALERTS{alertstate="firing"}) or vector(0)', "firing", instant=True)],
            steps=thresholds((None, GREEN), (1, RED)),
            mappings=[{"type": "value", "options": {"0": {"text": "none", "index": 0}}}],
        ),
        stat(
            "Dead letters, last hour",
            grid(12, 0, 4, h),
            [
                target(
                    'sum(increase(crossing_events_rejected_total{reason!="duplicate"}[1h])) or vector(0)',
                    "rejected",
                    instant=True,
                )
            ],
            description="Malformed, invalid and unknown-port inputs in the last hour (duplicates not counted).",
            steps=thresholds((None, GREEN), (1, ORANGE), (10, RED)),
        ),
        stat(
            "Event time behind",
            grid(16, 0, 4, h),
            [target("max(port:crossing_watermark_lag_seconds)", "lag", instant=True)],
            unit="s",
            decimals=None,
            description="How far the latest event of the most delayed port is behind the clock.",
            steps=thresholds((None, GREEN), (900, ORANGE), (3600, RED)),
        ),
        stat(
            "Workers up",
            grid(20, 0, 4, h),
            [target('sum(up{job="crossing-worker"}) or vector(0)', "up", instant=True)],
            steps=thresholds((None, RED), (1, GREEN)),
        ),
    ]


def build(catalogue: Catalogue) -> dict[str, Any]:
    """The wall display for every port of the catalogue."""
    panels = summary_bar()
    for i, port in enumerate(catalogue.values()):
        panels += with_trends(port_row(port, ROW_H * (i + 1)))
    return dashboard(
        UID,
        "Crossings · wall display",
        panels,
        description="One row per port, for the operations room's wall screen (open with ?kiosk).",
        editable=False,
        graphTooltip=0,
        refresh="10s",
        time={"from": "now-1h", "to": "now"},
        timepicker={"hidden": True, "refresh_intervals": ["5s", "10s", "30s"]},
        style="dark",
        liveNow=False,
    )
