"""Wall display served by the worker: static assets and the server-sent event stream payload."""

from __future__ import annotations

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
