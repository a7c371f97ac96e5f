"""Dashboards as code: the committed JSON is what the code generates, the wall display fits a
1080p screen without scrolling, and its colours follow the catalogue's targets."""

from __future__ import annotations

import json

from crossing_monitor.core.catalogue import load_catalogue
from dashboards import wall
from dashboards.generate import JSON_DIR, dashboard_json, dashboards
from dashboards.grafana import DATASOURCE_UID

CELL_PX, GAP_PX = 30, 8  # Grafana's grid: a unit is 30 px high, with 8 px between units
SCREEN_PX = 1080
KIOSK_CHROME_PX = 40  # page padding left in kiosk mode, generously


def _committed(name: str) -> dict:
    return json.loads((JSON_DIR / name).read_text(encoding="utf-8"))


def _panels(d: dict) -> list[dict]:
    return [p for p in d["panels"] if p["type"] != "row"]


def test_committed_json_is_what_the_code_generates():
    for name, built in dashboards(load_catalogue()).items():
        assert (JSON_DIR / name).read_text(encoding="utf-8") == dashboard_json(built), (
            f"dashboards/json/{name} is stale: run `python -m dashboards.generate`"
        )


def test_wall_display_fits_1080p_without_scrolling():
    d = _committed("wall.json")
    cells: set[tuple[int, int]] = set()
    for panel in d["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
    units = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in d["panels"])
    height = units * CELL_PX + (units - 1) * GAP_PX
    assert height <= SCREEN_PX - KIOSK_CHROME_PX, f"{height}px of panels do not fit a 1080p screen"
    assert len(cells) == 24 * units, "the grid has holes"


def test_wall_display_is_a_kiosk_dashboard():
    d = _committed("wall.json")
    assert d["refresh"] in ("5s", "10s")
    assert d["style"] == "dark"
    assert d["timepicker"]["hidden"] is True
    assert d["editable"] is False


def test_wall_display_has_one_row_of_big_numbers_per_port():
    catalogue = load_catalogue()
    d = _committed("wall.json")
    rows: dict[int, list[dict]] = {}
    for panel in d["panels"]:
        rows.setdefault(panel["gridPos"]["y"], []).append(panel)
    port_rows = [panels for y, panels in sorted(rows.items()) if y > 0]
    assert len(port_rows) == len(catalogue)
    for port, panels in zip(catalogue.values(), port_rows, strict=True):
        assert all(p["type"] == "stat" for p in panels)
        assert panels[0]["title"].startswith(port.name)
        exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
        for metric in (
            "crossing_throughput_vehicles_per_hour",
            "crossing_day_vehicles",
            "crossing_peak_day_vehicles",
            f'crossing_inspection_avg_seconds{{port="{port.slug}", vehicle_class="truck"}}',
            "crossing_queue_vehicles",
            "crossing_wait_avg_seconds",
            'ALERTS{alertstate="firing"',
        ):
            assert metric in exprs, f"{port.slug}: no panel shows {metric}"
        assert all(f'port="{port.slug}"' in t["expr"] for p in panels for t in p["targets"])


def test_wall_colours_follow_the_catalogue_targets():
    catalogue = load_catalogue()
    d = _committed("wall.json")
    by_title: dict[tuple[int, str], dict] = {(p["gridPos"]["y"], p["title"]): p for p in d["panels"]}
    for i, port in enumerate(catalogue.values()):
        y = wall.ROW_H * (i + 1)

        def red_at(title: str, y: int = y) -> float:
            steps = by_title[y, title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
            return steps[-1]["value"]

        assert red_at("Queue") == port.targets["queue_vehicles"]
        assert red_at("Wait · forecast") == port.targets["wait_minutes"] * 60
        assert red_at("Trucks' inspection") == port.targets["truck_inspection_minutes"] * 60


def test_every_panel_queries_the_shipped_data_source():
    for name in ("wall.json", "analyst.json"):
        d = _committed(name)
        for panel in _panels(d):
            assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
            assert panel["targets"], panel["title"]
            for t in panel["targets"]:
                assert t["datasource"]["uid"] == DATASOURCE_UID
                assert t["expr"].strip()
        assert len({p["id"] for p in d["panels"]}) == len(d["panels"])


def test_analyst_dashboard_has_the_promised_views():
    d = _committed("analyst.json")
    panels = _panels(d)
    types = {p["type"] for p in panels}
    assert "heatmap" in types
    heatmap = next(p for p in panels if p["type"] == "heatmap")
    assert "crossing_inspection_seconds_bucket" in heatmap["targets"][0]["expr"]
    assert heatmap["targets"][0]["format"] == "heatmap"
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    assert "by (port, direction)" in exprs
    assert "crossing_events_rejected_total" in exprs
    assert "crossing_day_vehicles" in exprs and "crossing_peak_day_vehicles" in exprs
    record = [a for a in d["annotations"]["list"] if a.get("name") == "Record day"]
    assert record and "crossing_peak_day_timestamp_seconds" in record[0]["expr"] and record[0]["useValueForTime"]
    assert {v["name"] for v in d["templating"]["list"]} == {"port", "class"}


def test_wall_figures_cover_the_api_fields():
    f = wall.figures("khorgos")
    assert {api for _, api in f.values()} >= {
        "throughput_per_hour",
        "peak_day.crossings",
        "last_hour_avg_inspection_seconds.truck",
        "queue.outbound",
        "queue.inbound",
        "last_hour_avg_wait_seconds",
    }


def test_grafana_provisioning_matches_the_dashboards_and_push():
    import yaml

    from dashboards.generate import REPO_DIR
    from dashboards.push import FOLDER_UID, datasource_body

    provisioning = REPO_DIR / "deploy" / "grafana" / "provisioning"
    (ds,) = yaml.safe_load((provisioning / "datasources" / "crossing-monitor.yml").read_text())["datasources"]
    pushed = datasource_body("http://127.0.0.1:9090")
    assert {k: ds[k] for k in ("uid", "name", "type", "url")} == {k: pushed[k] for k in ("uid", "name", "type", "url")}
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "crossing-monitor.yml").read_text())["providers"]
    assert provider["folderUid"] == FOLDER_UID and provider["type"] == "file"
    assert "CROSSING_MONITOR_DASHBOARDS" in provider["options"]["path"]
