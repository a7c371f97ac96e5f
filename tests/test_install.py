"""Installed as a user installs it: `pip install` of the project without extras, into a fresh venv.

The test extras (httpx, PyYAML, ...) are not there, so a module of the product that needs one of
them undeclared fails here; `scripts/setup` installs `.[test]` and would hide it. Slow-ish (a venv
and a non-editable install, from pip's cache), so marked `install`; it runs in the suite all the same.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "crossing_monitor", "streams", "producers", "dashboards")
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
names = []
for top in ("crossing_monitor", "streams", "producers", "dashboards"):
    package = importlib.import_module(top)
    names.append(top)
    names += [m.name for m in pkgutil.walk_packages(package.__path__, top + ".")]
for name in names:
    if name not in ("crossing_monitor.__main__", "streams.app", "streams.web"):  # run a command or build the app
        importlib.import_module(name)
print(len(names), "modules")
"""

pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the project as `pip install .` leaves it: no extras, not editable."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"  # a copy, so the build's own files (build/, *.egg-info) stay out of the checkout
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    env = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=120)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*pip, str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return env


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command of the venv, with nothing of the checkout or the test environment on its path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "200"  # the table on one line per port
    command = [str(venv / "bin" / args[0]), *args[1:]]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_no_test_extra_is_installed(venv, tmp_path):
    listed = _run(venv, "python", "-m", "pip", "list", "--format=freeze", cwd=tmp_path)
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "crossing-monitor" in names
    assert not names & {"httpx", "pytest", "hypothesis", "selenium", "import-linter", "deptry"}, names


def test_the_commands_answer_help(venv, tmp_path):
    top = _run(venv, "crossing-monitor", "--help", cwd=tmp_path)
    assert top.returncode == 0, top.stderr
    for command in ("demo", "analyze", "simulate", "worker", "broker", "dashboards"):
        assert command in top.stdout
    demo = _run(venv, "crossing-monitor", "demo", "--help", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "--speed" in demo.stdout and "--no-prometheus" in demo.stdout


def test_every_module_of_the_product_imports(venv, tmp_path):
    done = _run(venv, "python", "-c", IMPORT_EVERY_MODULE, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[0]) > 30


def test_simulate_then_analyze(venv, tmp_path):
    log = tmp_path / "khorgos.jsonl"
    sim = _run(
        venv,
        "crossing-monitor", "simulate", "--ports", "khorgos", "--start", "2024-05-01", "--days", "0.5",
        "--faults", "duplicates=0.05", "--out", str(log), "--no-progress",
        cwd=tmp_path,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    events = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    exits = {e["event_id"] for e in events if e["type"] == "gate.exited"}
    assert exits and len(events) > len({e["event_id"] for e in events})  # some resent

    done = _run(venv, "crossing-monitor", "analyze", str(log), "--format", "json", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert set(report["ports"]) == {"khorgos"}
    assert report["ports"]["khorgos"]["crossings"] == len(exits)
    assert report["rejected"]["duplicate"] == len(events) - len({e["event_id"] for e in events})

    table = _run(venv, "crossing-monitor", "analyze", str(log), "--no-progress", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "khorgos" in table.stdout.lower() and f"{len(exits):,}" in table.stdout
