"""Wall display served by the worker: static assets and the server-sent event stream payload."""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from typing import Any

ASSETS = {
    "index.html": "text/html",
    "display.css": "text/css",
    "display.js": "application/javascript",
}


def asset(name: str) -> tuple[bytes, str] | None:
    """(body, content type) of a static asset, or None for an unknown name."""
    if name not in ASSETS:
        return None
    body = resources.files(__package__).joinpath("static", name).read_bytes()
    return body, ASSETS[name]


def targets(catalogue: Any) -> dict[str, Any]:
    """Per-port names and targets for the page, in catalogue order."""
    out = {}
    for slug, port in catalogue.items():
        out[slug] = {"name": getattr(port, "name", slug), "targets": dict(getattr(port, "targets", {}) or {})}
    return out


def open_now(catalogue: Any, now: datetime) -> dict[str, bool]:
    """Whether each port clears traffic at `now` (its own local time): a closed port's silent
    sensors are no alarm, and the page says "closed" instead of showing them red."""
    return {slug: port.hours.is_open(now.astimezone(port.tz)) for slug, port in catalogue.items()}
