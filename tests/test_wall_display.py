"""Wall display (issue 7): assets served by the worker, and the page in headless Chromium on a live worker."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from eventlog import crossing, event, lines
from workers import WorkerProcess, produce, wait_until

from crossing_monitor.core.catalogue import load_catalogue
from streams import display

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def test_assets_are_local_and_complete():
    html, ctype = display.asset("index.html")
    assert ctype == "text/html"
    assert not re.search(rb"(src|href)=\"(https?:)?//", html), "no CDN: every asset from the worker"
    for ref in re.findall(rb"(?:src|href)=\"/display/([^\"]+)\"", html):
        body, _ = display.asset(ref.decode())
        assert body
    js, jtype = display.asset("display.js")
    assert jtype == "application/javascript" and b"EventSource" in js and b"aria-label" in js
    assert display.asset("../web.py") is None
    meta = display.targets(load_catalogue())
    assert len(meta) >= 7 and all("truck_inspection_minutes" in m["targets"] for m in meta.values())


def _events(hour: int, n: int, port: str = "khorgos") -> list[bytes]:
    evs = []
    for i in range(n):
        v = f"{port}-{hour}-{i}-{uuid.uuid4().hex[:6]}"
        evs += crossing(
            v, f"2023-09-27T{hour:02d}:0{i % 10}:00+08:00", f"2023-09-27T{hour:02d}:1{i % 10}:00+08:00",
            f"2023-09-27T{hour:02d}:3{i % 10}:00+08:00", port=port,
        )
    evs.append(event("vehicle.arrived", f"2023-09-27T{hour:02d}:40:00+08:00", f"q-{uuid.uuid4().hex}", port=port))
    return lines(evs)


def _driver():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/setup as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1920,1080",
              f"--user-data-dir={tempfile.mkdtemp(prefix='wall-chromium-')}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    drv.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False}
    )
    return drv


def _figures(drv, port: str) -> dict[str, str]:
    """The tile's figures, read in one script call: the page may re-render between element look-ups."""
    texts = drv.execute_script(
        "const out = {}; document.querySelectorAll(arguments[0]).forEach("
        "e => { out[e.getAttribute('data-fig')] = e.innerText; }); return out;",
        f'section[data-port="{port}"] [data-fig]',
    )
    return {name: (text or "").split(" ")[0] for name, text in texts.items()}


def _expected(report: dict) -> dict[str, str]:
    day = report["watermark"][:10]
    return {
        "throughput": str(report["throughput_per_hour"]),
        "today": str(report["days"][day]["crossings"]),
        "peak": str(report["peak_day"]["crossings"]),
        "queue_out": str(report["queue"]["outbound"]),
        "queue_in": str(report["queue"]["inbound"]),
        # the forecast line: predicted wait out/in, whole minutes
        "forecast": "/".join(f"{report['forecast'][d]['predicted_wait_seconds'] / 60:.0f}"
                             for d in ("outbound", "inbound")),
    }


@pytest.mark.kafka
def test_wall_display_live_in_headless_chromium(kafka, tmp_path):
    drv = _driver()
    ARTIFACTS.mkdir(exist_ok=True)
    topic = f"test.display.{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(kafka.bootstrap, topic, tmp_path).start()
    try:
        assert httpx.get(worker.url + "/display/display.css").headers["content-type"].startswith("text/css")
        produce(kafka.bootstrap, topic, _events(8, 5))
        wait_until(lambda: "khorgos" in worker.get("/api/ports")["ports"], 60, "first events in /api/ports")
        drv.get(worker.url + "/")
        want = _expected(worker.get("/api/ports")["ports"]["khorgos"])
        wait_until(lambda: _figures(drv, "khorgos").items() >= want.items(), 20, f"page shows {want}")
        n_tiles = len(drv.find_elements("css selector", "section.tile"))
        assert n_tiles == len(load_catalogue())
        assert drv.execute_script("return [innerWidth, innerHeight]") == [1920, 1080]
        assert drv.execute_script(
            "const d = document.documentElement;"
            "return d.scrollHeight <= innerHeight && d.scrollWidth <= innerWidth"
        ), "the page fits 1920x1080 without scrolling"
        assert not drv.find_element("id", "stale").is_displayed()
        # A port closed now (its hours, its time zone) says so, neutral; an open one with events
        # from 2023 shows its silent sensors red. Which ports are which depends on the hour of the run.
        catalogue = load_catalogue()
        now = datetime.now(UTC)
        expected_open = {slug: port.hours.is_open(now.astimezone(port.tz)) for slug, port in catalogue.items()}

        def freshness() -> dict[str, tuple[str, str]]:
            return drv.execute_script(
                "const out = {}; for (const t of document.querySelectorAll('section.tile')) {"
                " const v = t.querySelector('[data-fig=watermark]');"
                " out[t.dataset.port] = [v.previousElementSibling.textContent, v.className]; } return out;"
            )

        def matches_hours() -> bool:
            shown = freshness()
            return shown.keys() == expected_open.keys() and all(
                (label.startswith("Sensors") and "bad" in cls.split())  # events from 2023, or none
                if expected_open[slug]
                else (label.startswith("Closed") and cls.split() == ["v"])
                for slug, (label, cls) in shown.items()
            )

        wait_until(matches_hours, 20, f"tiles to show open/closed as the catalogue says: {expected_open}")
        drv.save_screenshot(str(ARTIFACTS / "wall_display_live.png"))

        drv.execute_script("window.__marker = 42")  # survives only if the page is not reloaded
        produce(kafka.bootstrap, topic, _events(9, 8))
        wait_until(lambda: worker.get("/api/ports")["ports"]["khorgos"]["crossings"] == 13, 60, "second batch")
        want2 = _expected(worker.get("/api/ports")["ports"]["khorgos"])
        assert want2 != want
        wait_until(lambda: _figures(drv, "khorgos").items() >= want2.items(), 20, f"page updates to {want2}")
        assert drv.execute_script("return window.__marker") == 42
        drv.save_screenshot(str(ARTIFACTS / "wall_display_updated.png"))

        worker.stop()
        wait_until(lambda: drv.find_element("id", "stale").is_displayed(), 20, "stale banner")
        time.sleep(2)  # it stays up (no flicker back to "live")
        assert drv.find_element("id", "stale").is_displayed()
        drv.save_screenshot(str(ARTIFACTS / "wall_display_stale.png"))
    finally:
        drv.quit()
        worker.stop()
