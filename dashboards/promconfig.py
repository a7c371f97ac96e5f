"""Variants of the shipped Prometheus and Alertmanager configs, for the tests and the demo.

The files under deploy/ are the production configuration. A test (or the demo) needs the same
rules and scrape job pointed at other ports, with a temporary directory, and a test wants
minutes to pass in seconds: `render_prometheus` copies the config with those overrides, and can
scale every duration of the rules (`for:`, range windows, offsets) by a factor. Only durations
are scaled; numbers that are seconds of event time (e.g. "open for 1800 s") are left alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dashboards.generate import REPO_DIR

PROMETHEUS_DIR = REPO_DIR / "deploy" / "prometheus"
ALERTMANAGER_FILE = REPO_DIR / "deploy" / "alertmanager" / "alertmanager.yml"
JOB = "crossing-worker"

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = r"(?:\d+(?:ms|s|m|h|d|w|y))+"
_IN_RULES = re.compile(rf"(\[|offset\s+|for:\s*)({_DURATION})")


def duration_seconds(text: str) -> float:
    """'1h30m' → 5400.0."""
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text))


def scale_durations(rules_text: str, factor: float) -> str:
    """Rules text with every range window, offset and `for:` multiplied by factor (at least 1 s)."""

    def scaled(match: re.Match[str]) -> str:
        seconds = max(1, round(duration_seconds(match.group(2)) * factor))
        return f"{match.group(1)}{seconds}s"

    return _IN_RULES.sub(scaled, rules_text)


def render_prometheus(
    dest: Path,
    targets: Sequence[str],
    *,
    alertmanager: str | None = None,
    scrape_interval: str = "10s",
    evaluation_interval: str = "10s",
    time_scale: float = 1.0,
    self_target: str | None = None,
) -> Path:
    """Write prometheus.yml and its rules under dest; returns the config file's path.

    `targets` replaces the static worker targets (host:port); the file_sd list stays, pointed at
    dest/targets/, so more workers can be added while it runs.
    """
    import yaml

    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    rules_dir = dest / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    (dest / "targets").mkdir(exist_ok=True)
    (dest / "targets" / "workers.json").write_text(json.dumps([]), encoding="utf-8")
    for rule_file in config["rule_files"]:
        text = (PROMETHEUS_DIR / rule_file).read_text(encoding="utf-8")
        if time_scale != 1.0:
            text = scale_durations(text, time_scale)
        (rules_dir / Path(rule_file).name).write_text(text, encoding="utf-8")
    config["rule_files"] = [f"rules/{Path(r).name}" for r in config["rule_files"]]
    config["global"]["scrape_interval"] = scrape_interval
    config["global"]["evaluation_interval"] = evaluation_interval
    if alertmanager:
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
    else:
        config.pop("alerting", None)
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] == JOB:
            job["static_configs"][0]["targets"] = list(targets)
            job["file_sd_configs"][0]["files"] = [str(dest / "targets" / "*.json")]
            jobs.append(job)
        elif job["job_name"] == "prometheus" and self_target:
            job["static_configs"][0]["targets"] = [self_target]
            jobs.append(job)
    config["scrape_configs"] = jobs
    path = dest / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def render_alertmanager(
    dest: Path,
    webhook_url: str,
    *,
    group_wait: str | None = None,
    group_interval: str | None = None,
) -> Path:
    """Write alertmanager.yml with every webhook pointed at webhook_url (same paths); returns it."""
    import yaml

    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_FILE.read_text(encoding="utf-8"))
    base = webhook_url.rstrip("/")
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            path = "/" + hook["url"].split("/", 3)[3] if hook["url"].count("/") >= 3 else "/"
            hook["url"] = base + path
    routes = [config["route"], *config["route"].get("routes", [])]
    for route in routes:
        if group_wait is not None and ("group_wait" in route or route is config["route"]):
            route["group_wait"] = group_wait
        if group_interval is not None and ("group_interval" in route or route is config["route"]):
            route["group_interval"] = group_interval
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
