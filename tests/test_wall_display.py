"""Wall display (issues 7 and 17): assets, the broadcaster's payload, the palette's contrast, and the page
in headless Chromium on a live worker fed through a real broker, with a real Alertmanager."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from eventlog import crossing, event, lines
from workers import WorkerProcess, produce, wait_until

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.kafka.broker import free_port
from streams import display
from streams.display import broadcast

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
CATALOGUE = load_catalogue()
SIZES = [(1366, 768), (1920, 1080), (3840, 2160)]


def test_assets_are_local_and_complete():
    html, ctype = display.asset("index.html")
    assert ctype == "text/html"
    assert not re.search(rb"(src|href)=\"(https?:)?//", html), "no CDN: every asset from the worker"
    for ref in re.findall(rb"(?:src|href)=\"/display/([^\"]+)\"", html):
        body, _ = display.asset(ref.decode())
        assert body
    js, jtype = display.asset("display.js")
    assert jtype == "application/javascript" and b"EventSource" in js and b"aria-label" in js
    assert not re.search(rb"https?://", js), "the page loads nothing from elsewhere"
    assert display.asset("../web.py") is None
    meta = display.targets(CATALOGUE)
    assert len(meta) >= 7 and all("truck_inspection_minutes" in m["targets"] for m in meta.values())


# ---- the broadcaster's payload (no I/O) ---------------------------------------------------------


def test_monitor_clock_is_the_wall_clock_or_the_newest_watermark_ahead_of_it():
    wall = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    behind = {"a": {"watermark": "2026-12-01T15:00:00+08:00"}, "b": {"watermark": None}}  # 07:00 UTC
    assert broadcast.monitor_now(behind, wall) == wall
    ahead = behind | {"c": {"watermark": "2026-12-01T20:30:00+08:00"}}  # 12:30 UTC
    assert broadcast.monitor_now(ahead, wall) == datetime(2026, 12, 1, 12, 30, tzinfo=UTC)


def test_payload_is_slim_and_judges_hours_by_the_monitor_clock():
    from crossing_monitor.core.monitor import Monitor

    monitor = Monitor(CATALOGUE)
    # khorgos data in the small hours: open or not by its hours at the data's time, not the wall clock's
    monitor.process_all(lines(crossing("v1", "2023-09-27T02:00:00+08:00", "2023-09-27T02:20:00+08:00",
                                       "2023-09-27T03:00:00+08:00")))
    ports = monitor.report()["ports"]
    wall = datetime(2023, 9, 26, 12, 0, tzinfo=UTC)  # the day before: the watermark runs ahead
    out = orjson.loads(broadcast.payload(ports, CATALOGUE, {"state": "off", "firing": []}, wall))
    port = CATALOGUE["khorgos"]
    assert ports["khorgos"]["watermark"] == "2023-09-27T02:20:00+08:00"  # the second sensor's clock
    assert out["now"] == "2023-09-26T18:20:00+00:00"
    assert out["open"]["khorgos"] == port.hours.is_open(datetime(2023, 9, 27, 2, 20, tzinfo=port.tz))
    slim = out["ports"]["khorgos"]
    assert "days" not in slim and len(slim["trends"]["crossings"]) == 48
    assert slim["lanes"] == dict(port.lanes) and slim["today"] == 1
    full = len(orjson.dumps(ports["khorgos"]))
    assert len(orjson.dumps(slim)) < full


def test_firing_alerts_from_alertmanager_v2():
    alerts = [
        {"labels": {"alertname": "QueueBuildUp", "port": "khorgos"}, "annotations": {"summary": "queue over target"},
         "startsAt": "2026-12-01T08:00:00Z", "status": {"state": "active"}, "fingerprint": "f1"},
        {"labels": {"alertname": "WorkerDown"}, "annotations": {}, "startsAt": "2026-12-01T07:00:00Z",
         "status": {"state": "suppressed"}, "fingerprint": "f2"},
    ]
    assert broadcast.firing(alerts) == [
        {"port": "khorgos", "name": "QueueBuildUp", "summary": "queue over target", "since": "2026-12-01T08:00:00Z",
         "fingerprint": "f1"}
    ]


# ---- the palette ---------------------------------------------------------------------------------


def _luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_palette_contrast_meets_wcag():
    css = display.asset("display.css")[0].decode()
    var = dict(re.findall(r"--(\w+):(#[0-9A-Fa-f]{6})", css))
    assert {"bg", "tile", "text", "muted", "spark", "warn", "bad", "banner", "ink"} <= var.keys()
    assert {var["warn"].upper(), var["bad"].upper(), var["banner"].upper()} <= {
        "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"}, "Okabe-Ito colours"
    for fg, bg, least in [
        ("text", "tile", 7.0), ("text", "bg", 7.0), ("muted", "tile", 4.5),  # figures and labels (AA/AAA)
        ("ink", "warn", 4.5), ("ink", "bad", 4.5), ("ink", "banner", 4.5),  # text on an abnormal mark
        ("spark", "tile", 3.0), ("bad", "tile", 3.0),  # graphics: sparklines, an alerting tile's border
    ]:
        assert contrast(var[fg], var[bg]) >= least, f"{fg} on {bg}: {contrast(var[fg], var[bg]):.2f} < {least}"


# ---- the page, live -------------------------------------------------------------------------------


def _events(hour: int, n: int, port: str = "khorgos", queued: int = 1) -> list[bytes]:
    evs = []
    for i in range(n):
        v = f"{port}-{hour}-{i}-{uuid.uuid4().hex[:6]}"
        evs += crossing(
            v, f"2023-09-27T{hour:02d}:0{i % 10}:00+08:00", f"2023-09-27T{hour:02d}:1{i % 10}:00+08:00",
            f"2023-09-27T{hour:02d}:3{i % 10}:00+08:00", port=port, booked=bool(i % 2),
            direction="outbound" if i % 3 else "inbound",
        )
        evs.append(event("scan.completed", f"2023-09-27T{hour:02d}:2{i % 10}:00+08:00", v, port=port,
                         result="flagged" if i % 4 == 0 else "clear"))
    for j in range(queued):
        evs.append(event("vehicle.arrived", f"2023-09-27T{hour:02d}:4{j % 10}:00+08:00", f"q-{uuid.uuid4().hex}",
                         port=port))
    return lines(evs)


def _driver(width: int = 1920, height: int = 1080):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/setup as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", f"--window-size={width},{height}",
              f"--user-data-dir={tempfile.mkdtemp(prefix='wall-chromium-')}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    _size(drv, width, height)
    return drv


def _size(drv, width: int, height: int) -> None:
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def _figures(drv) -> dict[str, dict[str, str]]:
    """Every tile's figures (the text of each [data-fig]), read in one script call."""
    return drv.execute_script(
        "const out = {}; document.querySelectorAll('section.tile[data-port]').forEach(t => {"
        " const f = out[t.dataset.port] = {};"
        " t.querySelectorAll('[data-fig]').forEach(e => { f[e.dataset.fig] = e.textContent; }); });"
        " return out;"
    )


def _sparks(drv) -> dict[str, dict[str, int]]:
    return drv.execute_script(
        "const out = {}; document.querySelectorAll('section.tile[data-port]').forEach(t => {"
        " const f = out[t.dataset.port] = {};"
        " t.querySelectorAll('svg[data-spark]').forEach(e => {"
        "  f[e.dataset.spark] = [Number(e.dataset.points), e.querySelector('polyline').points.length]; }); });"
        " return out;"
    )


def _f(x, digits: int = 0) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _m(seconds, digits: int = 0) -> str:
    return _f(None if seconds is None else seconds / 60, digits)


def expected_figures(report: dict, slug: str) -> dict[str, str]:
    """What a tile must show, computed here from the port's /api/ports object (not from the payload)."""
    wm = report.get("watermark")
    day = (report.get("days") or {}).get(wm[:10]) if wm else None
    fc, lanes, used = report["forecast"], CATALOGUE[slug].lanes, report["lanes_in_use"]
    scans, by = report["scans"], report["avg_wait_seconds_by_booking"]
    return {
        "throughput": f"{report['throughput_per_hour']} veh/h",
        "today": f"{day['crossings'] if day else 0} veh",
        "peak": f"{_f(report['peak_day']['crossings'] if report['peak_day'] else None)} veh",
        "inspection": f"{_m(report['last_hour_avg_inspection_seconds'].get('truck'), 1)} min",
        "queue_out": f"{report['queue']['outbound']} veh",
        "queue_in": f"{report['queue']['inbound']} veh",
        "wait": f"{_m(report['last_hour_avg_wait_seconds'], 1)} min",
        "pred_out": f"{_m(fc['outbound']['predicted_wait_seconds'])} min",
        "pred_in": f"{_m(fc['inbound']['predicted_wait_seconds'])} min",
        "clear_out": f"{_m(fc['outbound']['clear_seconds'])} min",
        "clear_in": f"{_m(fc['inbound']['clear_seconds'])} min",
        "lanes_out": f"{used['outbound']}/{lanes['outbound']}",
        "lanes_in": f"{used['inbound']}/{lanes['inbound']}",
        "wait_booked": f"{_m(by['booked'], 1)} min",
        "wait_walk_up": f"{_m(by['walk_up'], 1)} min",
        "flagged": f"{_f(100 * scans['flagged'] / scans['completed'] if scans['completed'] else None, 1)} %",
    }


def expected_points(report: dict) -> dict[str, int]:
    t, s = report["trends"], report["trend_samples"]
    count = lambda xs: sum(x is not None for x in xs)  # noqa: E731
    return {"throughput": count(t["crossings"]), "queue_out": count(s["queue"]["outbound"]),
            "queue_in": count(s["queue"]["inbound"]), "wait": count(s["wait_seconds"])}


def _shown_equals_api(drv, worker, only: set[str] | None = None) -> list[str]:
    """Differences between every tile (of `only`, default all) and /api/ports (empty when they agree)."""
    api = worker.get("/api/ports")["ports"]
    shown, sparks = _figures(drv), _sparks(drv)
    diffs = []
    for slug in CATALOGUE:
        if slug not in api or (only is not None and slug not in only):
            continue
        want = expected_figures(api[slug], slug)
        got = {k: v for k, v in shown.get(slug, {}).items() if k in want}
        if got != want:
            diffs.append(f"{slug}: shown {got} != api {want}")
        points = expected_points(api[slug])
        got_points = {k: v[0] for k, v in sparks.get(slug, {}).items()}
        if got_points != points or any(a != b for a, b in sparks.get(slug, {}).values()):
            diffs.append(f"{slug}: sparkline points {sparks.get(slug)} != series {points}")
    return diffs


def _wait_agree(drv, worker, what: str, timeout: float = 20) -> None:
    """Until every tile equals /api/ports; the differences in the failure message."""
    diffs: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        diffs = _shown_equals_api(drv, worker)
        if not diffs:
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: " + "; ".join(diffs)[:3000])


def _post_alert(am: str, port: str, ends: datetime) -> None:
    now = datetime.now(UTC)
    httpx.post(f"{am}/api/v2/alerts", json=[{
        "labels": {"alertname": "WallTestQueue", "port": port, "severity": "page"},
        "annotations": {"summary": f"queue at {port} above its target"},
        "startsAt": (now - timedelta(seconds=5)).isoformat(), "endsAt": ends.isoformat(),
    }], timeout=5).raise_for_status()


def _no_scroll(drv) -> bool:
    return drv.execute_script(
        "const d = document.documentElement; return d.scrollHeight <= innerHeight && d.scrollWidth <= innerWidth"
    )


@pytest.fixture
def alertmanager(tmp_path):
    if ALERTMANAGER is None:
        pytest.skip("prometheus-alertmanager not installed")
    from test_prometheus_live import start_alertmanager

    procs: list[subprocess.Popen] = []
    try:
        yield "http://" + start_alertmanager(tmp_path, "http://127.0.0.1:9/", procs)
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)


@pytest.mark.kafka
def test_wall_display_live_in_headless_chromium(kafka, tmp_path, alertmanager, monkeypatch):
    from axe_selenium_python import Axe

    ARTIFACTS.mkdir(exist_ok=True)
    monkeypatch.setenv("CROSSING_MONITOR_ALERTMANAGER", alertmanager)
    topic = f"test.display.{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(kafka.bootstrap, topic, tmp_path).start()
    drv = _driver()
    try:
        assert httpx.get(worker.url + "/display/display.css").headers["content-type"].startswith("text/css")
        produce(kafka.bootstrap, topic, _events(8, 5) + _events(8, 7, "alashankou", queued=3)
                + _events(9, 4, "lektse", queued=0))
        wait_until(lambda: {"khorgos", "alashankou", "lektse"} <= worker.get("/api/ports")["ports"].keys(), 60,
                   "first events in /api/ports")
        drv.get(worker.url + "/")
        _wait_agree(drv, worker, "every tile to equal /api/ports")
        assert len(drv.find_elements("css selector", "section.tile[data-port]")) == len(CATALOGUE)
        assert not drv.find_element("id", "stale").is_displayed()
        assert drv.execute_script("return document.querySelectorAll('[data-alert-port]').length") == 0
        wait_until(lambda: "no alert firing" in drv.find_element("css selector", "[data-overview=alerts]").text,
                   20, "the overview to say Alertmanager has no alert firing")

        # the sensors' age and "Closed" are judged by the monitor clock: the newest watermark (2023)
        # is far behind the wall clock, so the monitor clock is the wall clock here
        clock = drv.find_element("id", "clock").text
        assert clock.startswith("Monitor clock " + datetime.now(UTC).strftime("%Y-%m-%d"))

        # accessibility: axe-core in the page, no serious or critical violation
        axe = Axe(drv)
        axe.inject()
        results = axe.run()
        bad = [(v["id"], v["impact"], len(v["nodes"])) for v in results["violations"]
               if v["impact"] in ("serious", "critical")]
        assert not bad, f"axe-core: {bad}"

        # an alert posted to the real Alertmanager: its banner, its tile marked; gone once it ends
        _post_alert(alertmanager, "alashankou", datetime.now(UTC) + timedelta(seconds=25))
        banner_ports = "return [...document.querySelectorAll('[data-alert-port]')].map(e => e.dataset.alertPort)"
        wait_until(lambda: drv.execute_script(banner_ports) == ["alashankou"], 20, "the alert's banner")
        banner = drv.find_element("css selector", "[data-alert-port=alashankou]").text
        assert "Alashankou" in banner and "WallTestQueue" in banner and "since" in banner
        marked = "return [...document.querySelectorAll('section.tile.alerting')].map(t => t.dataset.port)"
        assert drv.execute_script(marked) == ["alashankou"]
        badge = drv.find_element("css selector", 'section[data-port="alashankou"] [data-badge=alert]')
        assert badge.text.startswith("▲")
        for w, h in SIZES:
            _size(drv, w, h)
            time.sleep(1.0)
            assert drv.execute_script("return [innerWidth, innerHeight]") == [w, h]
            assert _no_scroll(drv), f"the wall fits {w}x{h} without scrolling"
            drv.save_screenshot(str(ARTIFACTS / f"wall_display_{w}x{h}.png"))
        _size(drv, 1920, 1080)
        wait_until(lambda: drv.execute_script("return document.querySelectorAll('[data-alert-port]').length") == 0,
                   60, "the banner to go when the alert resolves")
        assert drv.execute_script("return document.querySelectorAll('section.tile.alerting').length") == 0

        # figures change without a reload
        drv.execute_script("window.__marker = 42")
        produce(kafka.bootstrap, topic, _events(9, 8) + _events(10, 3, "alashankou"))
        wait_until(lambda: worker.get("/api/ports")["ports"]["khorgos"]["crossings"] == 13, 60, "second batch")
        _wait_agree(drv, worker, "every tile to follow /api/ports")
        assert _figures(drv)["khorgos"]["today"] == "13 veh"
        assert drv.execute_script("return window.__marker") == 42

        # kiosk: a subset, and one port large
        drv.get(worker.url + "/?ports=khorgos,alashankou")
        wait_until(lambda: set(_figures(drv)) == {"khorgos", "alashankou"}, 20, "the subset")
        assert _no_scroll(drv)
        drv.get(worker.url + "/port/lektse")
        wait_until(lambda: set(_figures(drv)) == {"lektse"}, 20, "one port")
        assert not _shown_equals_api(drv, worker, {"lektse"}) and _no_scroll(drv)
        _size(drv, 1366, 768)
        time.sleep(0.5)
        assert _no_scroll(drv)
        drv.save_screenshot(str(ARTIFACTS / "wall_display_port_lektse.png"))
        assert httpx.get(worker.url + "/port/atlantis").status_code == 404

        worker.stop()
        wait_until(lambda: drv.find_element("id", "stale").is_displayed(), 20, "stale banner")
        time.sleep(2)  # it stays up (no flicker back to "live")
        assert drv.find_element("id", "stale").is_displayed()
        drv.save_screenshot(str(ARTIFACTS / "wall_display_stale.png"))
    finally:
        drv.quit()
        worker.stop()


@pytest.mark.kafka
def test_wall_says_when_alertmanager_cannot_be_reached(kafka, tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSING_MONITOR_ALERTMANAGER", f"http://127.0.0.1:{free_port()}")  # nothing listens
    topic = f"test.display.{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(kafka.bootstrap, topic, tmp_path).start()
    drv = _driver(1366, 768)
    try:
        drv.get(worker.url + "/")
        wait_until(lambda: drv.execute_script("return document.querySelectorAll('[data-alert-note]').length") == 1,
                   20, "the note that Alertmanager cannot be reached")
        assert "cannot be reached" in drv.find_element("css selector", "[data-alert-note]").text
        assert not drv.find_element("id", "stale").is_displayed()
    finally:
        drv.quit()
        worker.stop()
