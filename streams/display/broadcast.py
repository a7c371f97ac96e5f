"""One broadcaster for every open wall page.

Each open page used to make the worker rebuild the whole /api/ports object (every day since the start)
twice a second. Now one task per worker reads /api/ports once a second, cuts it down to what the page
draws (`slim`), adds the monitor's clock, which ports are open by it and the firing alerts, and sends
the same bytes to every page only when they changed. Alertmanager is polled by a second task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

log = logging.getLogger("crossing_monitor.worker")

TICK_SECONDS = 1.0
ALERT_POLL_SECONDS = 3.0
ALERTS_PATH = "/api/v2/alerts?active=true&silenced=false&inhibited=false"


def monitor_now(ports: Mapping[str, Any], wall: datetime) -> datetime:
    """The monitor's clock: the wall clock, or the newest watermark of all ports when that runs ahead
    (a replay at speed, the demo at 10x), so "closed" and the sensors' age read as in a live day."""
    newest = wall
    for report in ports.values():
        wm = report.get("watermark")
        if wm:
            t = datetime.fromisoformat(wm)
            if t > newest:
                newest = t
    return newest.astimezone(UTC)


def slim(report: dict[str, Any], port: Any) -> dict[str, Any]:
    """The figures one tile draws, taken from the port's /api/ports object unchanged (so the page's
    figures are /api/ports's figures), plus the built lanes from the catalogue."""
    wm = report.get("watermark")
    days = report.get("days") or {}
    today = days.get(wm[:10]) if wm else None
    insp = (report.get("last_hour_avg_inspection_seconds") or {}).get("truck")
    trends = report.get("trends") or {}
    samples = report.get("trend_samples") or {}
    forecast = report.get("forecast") or {}
    return {
        "watermark": wm,
        "throughput_per_hour": report.get("throughput_per_hour"),
        "today": today["crossings"] if today else 0,
        "peak_day": report.get("peak_day"),
        "inspection_truck_seconds": insp,
        "wait_seconds": report.get("last_hour_avg_wait_seconds"),
        "queue": report.get("queue"),
        "forecast": {
            d: {k: f.get(k) for k in ("predicted_wait_seconds", "clear_seconds")} for d, f in forecast.items()
        },
        "lanes_in_use": report.get("lanes_in_use"),
        "lanes": dict(getattr(port, "lanes", {}) or {}),
        "wait_by_booking": report.get("avg_wait_seconds_by_booking"),
        "scans": report.get("scans"),
        "trends": {
            "start_unix": trends.get("start_unix"),
            "quarter_seconds": trends.get("quarter_seconds"),
            "crossings": trends.get("crossings", []),
            "queue_outbound": (samples.get("queue") or {}).get("outbound", []),
            "queue_inbound": (samples.get("queue") or {}).get("inbound", []),
            "wait_seconds": samples.get("wait_seconds", []),
        },
    }


def firing(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alertmanager API v2 alerts → what a banner says: port (None: the pipeline), name, summary, since."""
    out = []
    for a in alerts:
        if (a.get("status") or {}).get("state", "active") != "active":
            continue
        labels, notes = a.get("labels") or {}, a.get("annotations") or {}
        out.append(
            {
                "port": labels.get("port"),
                "name": labels.get("alertname", "alert"),
                "summary": notes.get("summary") or notes.get("description") or labels.get("alertname", ""),
                "since": a.get("startsAt"),
                "fingerprint": a.get("fingerprint"),
            }
        )
    out.sort(key=lambda x: (x["since"] or "", x["port"] or "", x["name"]))
    return out


def payload(ports: dict[str, Any], catalogue: Mapping[str, Any], alerts: dict[str, Any], wall: datetime) -> bytes:
    """The one display payload every page receives."""
    now = monitor_now(ports, wall)
    return orjson.dumps(
        {
            "now": now.isoformat(),
            "open": {slug: p.hours.is_open(now.astimezone(p.tz)) for slug, p in catalogue.items()},
            "ports": {slug: slim(ports[slug], catalogue[slug]) for slug in catalogue if slug in ports},
            "alerts": alerts,
        }
    )


class Broadcaster:
    """Latest display frame and the pages waiting for the next one."""

    def __init__(self, ports_url: str, catalogue: Mapping[str, Any], alertmanager: str | None) -> None:
        self.ports_url = ports_url
        self.catalogue = catalogue
        self.alertmanager = alertmanager.rstrip("/") if alertmanager else None
        self.alerts: dict[str, Any] = {"state": "off" if alertmanager is None else "starting", "firing": []}
        self.frame: bytes | None = None  # the SSE frame of the latest payload
        self.version = 0
        self.builds = 0
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        if not self._tasks:
            self._tasks.append(asyncio.ensure_future(self._run()))
            if self.alertmanager:
                self._tasks.append(asyncio.ensure_future(self._poll_alerts()))

    async def wait(self, seen: int, timeout: float) -> int:
        """Until a frame newer than `seen` (or the timeout); the latest version."""
        if self.version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self.version

    def _publish(self, body: bytes) -> None:
        frame = b"event: display\ndata: " + body + b"\n\n"
        if frame != self.frame:
            self.frame = frame
            self.version += 1
            self._changed.set()
            self._changed = asyncio.Event()

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(self.ports_url, timeout=aiohttp.ClientTimeout(total=5)) as r:
                        data = orjson.loads(await r.read()) if r.status == 200 else None
                except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError):
                    data = None
                if isinstance(data, dict):
                    self.builds += 1
                    try:
                        self._publish(payload(data.get("ports", {}), self.catalogue, self.alerts, datetime.now(UTC)))
                    except Exception:  # noqa: BLE001 - a frame that cannot be built must not end the broadcast
                        log.exception("wall display: the display frame could not be built; keeping the last one")
                await asyncio.sleep(TICK_SECONDS)

    async def _poll_alerts(self) -> None:
        url = f"{self.alertmanager}{ALERTS_PATH}"
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as r:
                        r.raise_for_status()
                        self.alerts = {"state": "ok", "firing": firing(orjson.loads(await r.read()))}
                except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError, OSError, ValueError,
                        AttributeError, TypeError, KeyError) as exc:  # unreachable, or not Alertmanager's answer
                    self.alerts = {
                        "state": "unreachable",
                        "error": f"Alertmanager {self.alertmanager} cannot be reached ({type(exc).__name__})",
                        "firing": [],
                    }
                await asyncio.sleep(ALERT_POLL_SECONDS)
