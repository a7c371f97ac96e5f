"""Small builders for Grafana dashboard JSON: plain dicts, no dependency.

Only what the two dashboards need; each builder returns the dict Grafana (10.x/11.x) stores, so
the committed JSON reads like a dashboard exported from Grafana.
"""

from __future__ import annotations

from typing import Any

DATASOURCE_UID = "crossing-prometheus"
DATASOURCE_NAME = "crossing-monitor Prometheus"
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
SCHEMA_VERSION = 39

GREEN, ORANGE, RED, BLUE, GREY = "green", "orange", "red", "blue", "#8e8e8e"


def target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, fmt: str = "time_series") -> dict:
    """One PromQL query of a panel."""
    t: dict[str, Any] = {"datasource": DATASOURCE, "expr": expr, "refId": ref, "legendFormat": legend or "__auto"}
    if instant:
        t["instant"] = True
        t["range"] = False
    if fmt != "time_series":
        t["format"] = fmt
    return t


def targets(*pairs: tuple[str, str], instant: bool = False) -> list[dict]:
    """Queries from (expr, legend) pairs, refIds A, B, C..."""
    return [target(e, legend, chr(ord("A") + i), instant=instant) for i, (e, legend) in enumerate(pairs)]


def thresholds(*steps: tuple[float | None, str]) -> dict:
    """Absolute colour steps; the first step's value is None (the base colour)."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def grid(x: int, y: int, w: int, h: int) -> dict:
    return {"x": x, "y": y, "w": w, "h": h}


def stat(
    title: str,
    pos: dict,
    queries: list[dict],
    *,
    unit: str = "none",
    decimals: int | None = 0,
    steps: dict | None = None,
    color_mode: str = "background",
    text_mode: str = "auto",
    mappings: list | None = None,
    overrides: list | None = None,
    description: str = "",
    no_value: str | None = None,
) -> dict:
    """A big number (wall display): last value, coloured by thresholds."""
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": steps or thresholds((None, BLUE)),
        "mappings": mappings or [],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if no_value is not None:
        defaults["noValue"] = no_value
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": pos,
        "targets": queries,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": color_mode,
            "graphMode": "none",
            "justifyMode": "center",
            "textMode": text_mode,
            "orientation": "horizontal",
            "wideLayout": True,
            "showPercentChange": False,
        },
    }


def timeseries(
    title: str,
    pos: dict,
    queries: list[dict],
    *,
    unit: str = "none",
    description: str = "",
    overrides: list | None = None,
    draw: str = "line",
    stack: bool = False,
) -> dict:
    """A time series panel (analyst dashboard)."""
    custom: dict[str, Any] = {
        "drawStyle": draw,
        "lineWidth": 1,
        "fillOpacity": 80 if draw == "bars" else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": pos,
        "targets": queries,
        "fieldConfig": {
            "defaults": {"unit": unit, "color": {"mode": "palette-classic"}, "custom": custom},
            "overrides": overrides or [],
        },
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "right",
                "calcs": ["lastNotNull", "max"],
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def dashed_override(name_regex: str, color: str | None = None) -> dict:
    """Draw matching series as dashed reference lines (targets, records)."""
    props: list[dict[str, Any]] = [
        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
        {"id": "custom.fillOpacity", "value": 0},
    ]
    if color:
        props.append({"id": "color", "value": {"mode": "fixed", "fixedColor": color}})
    return {"matcher": {"id": "byRegexp", "options": name_regex}, "properties": props}


def fixed_color_override(name: str, color: str) -> dict:
    """A field shown in one fixed colour whatever the thresholds (e.g. the target next to a value)."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}],
    }


def row(title: str, y: int) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": grid(0, y, 24, 1), "panels": []}


def dashboard(uid: str, title: str, panels: list[dict], **extra: Any) -> dict:
    """A dashboard with panel ids numbered in order (stable JSON)."""
    for i, panel in enumerate(panels, start=1):
        panel["id"] = i
    d: dict[str, Any] = {
        "uid": uid,
        "title": title,
        "tags": ["crossing-monitor"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "panels": panels,
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
    }
    d.update(extra)
    return d
