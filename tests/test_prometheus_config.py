"""The shipped Prometheus/Alertmanager configuration: valid for the real tools, and in step with
the port catalogue (thresholds and hours come from it, never from numbers typed into rules)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from crossing_monitor.core.catalogue import load_catalogue
from dashboards import catalogue_rules
from dashboards.generate import CATALOGUE_RULES, REPO_DIR
from dashboards.promconfig import ALERTMANAGER_FILE, PROMETHEUS_DIR, render_alertmanager, render_prometheus

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
ALERTS_FILE = PROMETHEUS_DIR / "rules" / "crossing_alerts.rules.yml"


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _recorded(text: str) -> dict[tuple[str, str], str]:
    """(record, port) → expr of the generated rules file."""
    rules = yaml.safe_load(text)["groups"][0]["rules"]
    return {(r["record"], r["labels"]["port"]): r["expr"] for r in rules}


def test_generated_rules_are_the_committed_ones():
    assert CATALOGUE_RULES.read_text(encoding="utf-8") == catalogue_rules.render(load_catalogue()), (
        "deploy/prometheus/rules/crossing_catalogue.rules.yml is stale: run `python -m dashboards.generate`"
    )


def test_every_port_has_its_catalogue_targets():
    catalogue = load_catalogue()
    rules = _recorded(CATALOGUE_RULES.read_text(encoding="utf-8"))
    for slug, port in catalogue.items():
        t = port.targets
        assert rules["crossing:target_queue_vehicles", slug] == f"vector({t['queue_vehicles']})"
        assert rules["crossing:target_wait_seconds", slug] == f"vector({t['wait_minutes'] * 60})"
        inspection = t["truck_inspection_minutes"] * 60
        assert rules["crossing:target_truck_inspection_seconds", slug] == f"vector({inspection})"
        assert ("crossing:port_open", slug) in rules
        assert ("crossing:watermark_changes:silence_window", slug) in rules
    assert {port for _, port in rules} == set(catalogue)


def test_a_changed_catalogue_changes_the_rules():
    catalogue = load_catalogue()
    khorgos = catalogue["khorgos"]
    edited = replace(khorgos, targets={**khorgos.targets, "queue_vehicles": 333, "silence_minutes": 40})
    rules = _recorded(catalogue_rules.render([edited]))
    assert rules["crossing:target_queue_vehicles", "khorgos"] == "vector(333)"
    assert rules["crossing:silence_limit_seconds", "khorgos"] == "vector(2400)"
    assert "[40m]" in rules["crossing:watermark_changes:silence_window", "khorgos"]


def test_quiet_ports_get_longer_silence_windows():
    catalogue = load_catalogue()
    limits = {slug: catalogue_rules.silence_limit_seconds(p) for slug, p in catalogue.items()}
    assert limits["khorgos"] == 15 * 60
    assert limits["burang"] > limits["zhangmu"] > limits["gyirong"] > limits["lektse"] > limits["khorgos"]
    # ...but short enough to fire within an ordinary opening day.
    assert all(limits[s] < catalogue_rules.open_hours_per_day(p) * 3600 for s, p in catalogue.items())


def test_alert_rules_hold_no_per_port_numbers_and_explain_themselves():
    text = ALERTS_FILE.read_text(encoding="utf-8")
    for slug in load_catalogue():
        assert slug not in text, f"alert rules name port {slug}: thresholds belong in the catalogue"
    alerts = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} >= {
        "CrossingQueueBuildUp",
        "CrossingStalled",
        "CrossingInspectionSlow",
        "CrossingSensorsSilent",
        "CrossingDeadLettersRising",
    }
    for alert in alerts:
        annotations = alert["annotations"]
        assert set(annotations) >= {"summary", "description", "runbook"}, alert["alert"]
        assert len(annotations["runbook"].split()) >= 30, f"{alert['alert']}: the runbook is a paragraph"
        assert alert["labels"]["severity"] in ("critical", "warning")
        assert "for" in alert


@needs_promtool
def test_promtool_check_config_and_rules():
    _run(PROMTOOL, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    _run(PROMTOOL, "check", "rules", *map(str, RULE_FILES))


@needs_promtool
def test_rendered_test_config_is_valid_and_scaled(tmp_path: Path):
    config = render_prometheus(
        tmp_path, ["127.0.0.1:1"], alertmanager="127.0.0.1:2", scrape_interval="1s", time_scale=1 / 60
    )
    _run(PROMTOOL, "check", "config", str(config))
    alerts = (tmp_path / "rules" / "crossing_alerts.rules.yml").read_text(encoding="utf-8")
    assert "for: 10s" in alerts and "[15m]" not in alerts
    assert re.search(r"offset 30s", alerts)


@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (Debian package prometheus-alertmanager)")
def test_alertmanager_config_routes_by_port_and_severity(tmp_path: Path):
    _run(AMTOOL, "check-config", str(ALERTMANAGER_FILE))
    _run(AMTOOL, "check-config", str(render_alertmanager(tmp_path, "http://127.0.0.1:1", group_wait="1s")))

    def receiver(*labels: str) -> str:
        cmd = [AMTOOL, "config", "routes", "test", f"--config.file={ALERTMANAGER_FILE}", *labels]
        return _run(*cmd).stdout.strip()

    assert receiver("alertname=CrossingStalled", "port=khorgos", "severity=critical") == "ops-page"
    assert receiver("alertname=CrossingQueueBuildUp", "port=lektse", "severity=warning") == "ops-room"
    assert receiver("alertname=CrossingDeadLettersRising", "reason=invalid", "severity=warning") == "platform"
    assert receiver("alertname=CrossingWorkerDown", "instance=127.0.0.1:6066", "severity=critical") == "platform"
    inhibit = yaml.safe_load(ALERTMANAGER_FILE.read_text(encoding="utf-8"))["inhibit_rules"]
    silent = [r for r in inhibit if r["source_matchers"] == ['alertname="CrossingSensorsSilent"']]
    assert silent and "CrossingStalled" in silent[0]["target_matchers"][0] and silent[0]["equal"] == ["port"]


def test_file_sd_list_is_valid_json_for_prometheus():
    import json

    for path in (PROMETHEUS_DIR / "targets").glob("*.json"):
        groups = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(groups, list)
        assert all(isinstance(g.get("targets"), list) for g in groups)
    assert (REPO_DIR / "deploy" / "prometheus" / "prometheus.yml").exists()


def test_worker_health_rules_are_loaded_everywhere_and_explain_themselves():
    worker_rules = PROMETHEUS_DIR / "rules" / "crossing_worker.rules.yml"
    for config in ("prometheus.yml", "prometheus.compose.yml"):
        loaded = yaml.safe_load((PROMETHEUS_DIR / config).read_text(encoding="utf-8"))["rule_files"]
        assert "rules/crossing_worker.rules.yml" in loaded, config
    alerts = [r for g in yaml.safe_load(worker_rules.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]
    exprs = " ".join(a["expr"] for a in alerts)
    for metric in (
        "crossing_worker_checkpoint_age_seconds",
        "crossing_worker_consumer_lag_messages",
        "crossing_worker_batches_undecodable_total",
    ):
        assert metric in exprs
    for alert in alerts:
        annotations = alert["annotations"]
        assert set(annotations) >= {"summary", "description", "runbook"}, alert["alert"]
        assert len(annotations["runbook"].split()) >= 30, f"{alert['alert']}: the runbook is a paragraph"
        assert alert["labels"]["severity"] in ("critical", "warning") and "for" in alert
        assert "port" not in alert["expr"]  # the pipeline's own health: routed to the platform team
