"""The analyst dashboard: history per port and direction, inspection-time distribution, daily
counts against the record day, and the dead letters.

Variables `port` and `class` filter every panel; figures that are in event time (throughput,
day counts, last-hour averages) are plotted as Prometheus saw them, and the record day is marked
on the time axis by an annotation taken from `crossing_peak_day_timestamp_seconds`.
"""

from __future__ import annotations

from typing import Any

from crossing_monitor.core.catalogue import Catalogue
from crossing_monitor.core.events import VEHICLE_CLASSES
from dashboards.grafana import (
    DATASOURCE,
    GREY,
    dashboard,
    dashed_override,
    grid,
    row,
    stat,
    target,
    targets,
    timeseries,
)

UID = "crossing-analyst"
PORT = 'port=~"$port"'
CLASS = 'vehicle_class=~"$class"'


def _variables(catalogue: Catalogue) -> list[dict[str, Any]]:
    port = {
        "type": "query",
        "name": "port",
        "label": "Port",
        "datasource": DATASOURCE,
        "query": {"query": "label_values(crossing_watermark_timestamp_seconds, port)", "refId": "ports"},
        "definition": "label_values(crossing_watermark_timestamp_seconds, port)",
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"text": ["All"], "value": ["$__all"]},
        "sort": 0,
    }
    cls = {
        "type": "custom",
        "name": "class",
        "label": "Vehicle class",
        "query": ",".join(VEHICLE_CLASSES),
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"text": ["truck"], "value": ["truck"]},
        "options": [{"text": c, "value": c, "selected": c == "truck"} for c in VEHICLE_CLASSES],
    }
    return [port, cls]


def _panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = [row("Traffic", 0)]
    panels += [
        timeseries(
            "Live throughput (event time)",
            grid(0, 1, 12, 8),
            targets((f"max by (port) (crossing_throughput_vehicles_per_hour{{{PORT}}})", "{{port}}")),
            unit="none",
            description="Crossings in the 60 minutes ending at each port's latest event, vehicles per hour.",
        ),
        timeseries(
            "Crossings per hour, by port and direction (wall clock)",
            grid(12, 1, 12, 8),
            targets(
                (
                    f"sum by (port, direction) (rate(crossing_vehicles_total{{{PORT}}}[$__rate_interval])) * 3600",
                    "{{port}} {{direction}}",
                )
            ),
            description="Gate exits as Prometheus saw them arrive; differs from the event-time figure in a replay.",
        ),
        timeseries(
            "Queue by port and direction",
            grid(0, 9, 12, 8),
            targets(
                (f"max by (port, direction) (crossing_queue_vehicles{{{PORT}}})", "{{port}} {{direction}}"),
                (f"crossing:target_queue_vehicles{{{PORT}}}", "{{port}} target"),
            ),
            overrides=[dashed_override(".* target$", GREY)],
        ),
        timeseries(
            "Average wait (last hour)",
            grid(12, 9, 12, 8),
            targets(
                (f"max by (port) (crossing_wait_avg_seconds{{{PORT}}})", "{{port}}"),
                (f"crossing:target_wait_seconds{{{PORT}}}", "{{port}} limit"),
            ),
            unit="s",
            overrides=[dashed_override(".* limit$", GREY)],
        ),
        row("Inspection", 17),
    ]
    heatmap = {
        "type": "heatmap",
        "title": "Inspection time distribution",
        "description": "Vehicles leaving per inspection-time bucket (entry to exit), for the chosen ports and classes.",
        "datasource": DATASOURCE,
        "gridPos": grid(0, 18, 12, 9),
        "targets": [
            target(
                f"sum by (le) (increase(crossing_inspection_seconds_bucket{{{PORT}, {CLASS}}}[$__rate_interval]))",
                "{{le}}",
                fmt="heatmap",
            )
        ],
        "fieldConfig": {"defaults": {"unit": "s"}, "overrides": []},
        "options": {
            "calculate": False,
            "yAxis": {"unit": "s", "axisPlacement": "left"},
            "rowsFrame": {"layout": "le"},
            "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential", "exponent": 0.5, "steps": 64},
            "cellGap": 1,
            "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": True},
            "legend": {"show": True},
            "filterValues": {"le": 1e-9},
        },
    }
    distribution = {
        "type": "bargauge",
        "title": "Inspection time, all time",
        "description": "How many vehicles took up to each bucket bound (non-cumulative), since the start.",
        "datasource": DATASOURCE,
        "gridPos": grid(12, 18, 6, 9),
        "targets": [
            target(
                f"sum by (le) (crossing_inspection_seconds_bucket{{{PORT}, {CLASS}}})",
                "{{le}}",
                instant=True,
                fmt="heatmap",
            )
        ],
        "fieldConfig": {"defaults": {"unit": "none", "color": {"mode": "continuous-YlRd"}}, "overrides": []},
        "options": {
            "orientation": "horizontal",
            "displayMode": "gradient",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showUnfilled": True,
        },
    }
    panels += [
        heatmap,
        distribution,
        timeseries(
            "Average inspection (last hour) by class",
            grid(18, 18, 6, 9),
            targets(
                (
                    f"max by (port, vehicle_class) (crossing_inspection_avg_seconds{{{PORT}, {CLASS}}})",
                    "{{port}} {{vehicle_class}}",
                ),
                (f"crossing:target_truck_inspection_seconds{{{PORT}}}", "{{port}} truck target"),
            ),
            unit="s",
            overrides=[dashed_override(".* target$", GREY)],
        ),
        row("Days", 27),
        timeseries(
            "Crossings today, against the record day",
            grid(0, 28, 12, 8),
            targets(
                (f"max by (port) (crossing_day_vehicles{{{PORT}}})", "{{port}} today"),
                (f"max by (port) (crossing_peak_day_vehicles{{{PORT}}})", "{{port}} record"),
            ),
            description="The running count of the latest event's day; dashed: the record day's count. "
            "The record day itself is marked on the time axis.",
            overrides=[dashed_override(".* record$")],
        ),
        timeseries(
            "Daily counts",
            grid(12, 28, 8, 8),
            [
                {
                    **target(f"max by (port) (max_over_time(crossing_day_vehicles{{{PORT}}}[1d]))", "{{port}}"),
                    "interval": "1d",
                }
            ],
            description="Highest count each day reached, one bar per day and port.",
            draw="bars",
        ),
        stat(
            "Record day",
            grid(20, 28, 4, 8),
            [
                target(f"max by (port) (crossing_peak_day_vehicles{{{PORT}}})", "{{port}}", instant=True),
            ],
            description="Crossings on each port's record day so far.",
            color_mode="value",
            text_mode="value_and_name",
        ),
        row("Data quality", 36),
        timeseries(
            "Dead letters by reason",
            grid(0, 37, 8, 8),
            targets(("sum by (reason) (increase(crossing_events_rejected_total[$__rate_interval]))", "{{reason}}")),
            draw="bars",
            stack=True,
            description="Inputs sent to crossing.events.dlq (duplicates are counted, not forwarded).",
        ),
        timeseries(
            "Accepted events by type",
            grid(8, 37, 8, 8),
            targets((f"sum by (type) (rate(crossing_events_total{{{PORT}}}[$__rate_interval]))", "{{type}}")),
            unit="reqps",
        ),
        timeseries(
            "Event time behind the clock",
            grid(16, 37, 8, 8),
            targets((f"port:crossing_watermark_lag_seconds{{{PORT}}}", "{{port}}")),
            unit="s",
            description="Wall clock minus each port's latest event time: sensors buffering offline show here.",
        ),
    ]
    return panels


def build(catalogue: Catalogue) -> dict[str, Any]:
    """The analyst dashboard (the catalogue gives the variable's ports at run time, not here)."""
    record_day = {
        "name": "Record day",
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": "#F2CC0C",
        "expr": f"max by (port) (crossing_peak_day_timestamp_seconds{{{PORT}}}) * 1000",
        "useValueForTime": True,
        "titleFormat": "Record day",
        "textFormat": "{{port}}",
        "tagKeys": "port",
        "step": "1h",
    }
    return dashboard(
        UID,
        "Crossings · analyst",
        _panels(),
        description="History per port and direction, inspection-time distribution, daily counts, dead letters.",
        templating={"list": _variables(catalogue)},
        annotations={
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                record_day,
            ]
        },
        time={"from": "now-7d", "to": "now"},
        refresh="1m",
    )
