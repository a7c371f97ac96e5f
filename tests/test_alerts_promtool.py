"""Alert unit tests with `promtool test rules`: each alert fires when it should, not before, and
stays quiet on a normal day (the test files under tests/promtool/ hold the series by hand)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMTOOL = shutil.which("promtool")
HERE = Path(__file__).resolve().parent
TEST_FILES = sorted((HERE / "promtool").glob("*.test.yml"))
ALERTS_FILE = HERE.parent / "deploy" / "prometheus" / "rules" / "crossing_alerts.rules.yml"

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")


def _alert_names() -> set[str]:
    groups = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))["groups"]
    return {r["alert"] for g in groups for r in g["rules"] if "alert" in r}


def _alert_tests(path: Path) -> list[dict]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [t for test in doc["tests"] for t in test.get("alert_rule_test", [])]


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path):
    result = subprocess.run(
        [PROMTOOL, "test", "rules", path.name], cwd=path.parent, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_shown_firing_and_quiet_before():
    """Each alert has a test where it fires, and an earlier evaluation in the same file where it does not."""
    for name in _alert_names():
        proven = False
        for path in TEST_FILES:
            tests = [t for t in _alert_tests(path) if t["alertname"] == name]
            firing = [t for t in tests if t.get("exp_alerts")]
            quiet = [t for t in tests if not t.get("exp_alerts")]
            if firing and quiet:
                proven = True
        assert proven, f"{name}: no promtool test shows it firing after a quiet evaluation"


def test_normal_day_checks_every_alert_all_day():
    tests = _alert_tests(HERE / "promtool" / "normal_day.test.yml")
    assert {t["alertname"] for t in tests} == _alert_names()
    assert all(not t.get("exp_alerts") for t in tests)
    assert "23h59m" in {t["eval_time"] for t in tests}


def test_every_worker_health_alert_is_shown_firing_and_quiet_before():
    worker_rules = HERE.parent / "deploy" / "prometheus" / "rules" / "crossing_worker.rules.yml"
    groups = yaml.safe_load(worker_rules.read_text(encoding="utf-8"))["groups"]
    names = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert names == {"CrossingWorkerCheckpointStale", "CrossingWorkerLagging", "CrossingWorkerBatchesUndecodable"}
    tests = _alert_tests(HERE / "promtool" / "worker_health.test.yml")
    for name in names:
        mine = [t for t in tests if t["alertname"] == name]
        assert any(t.get("exp_alerts") for t in mine) and any(not t.get("exp_alerts") for t in mine), name
