"""Installed as a user installs it: `pip install` of the project without extras, into a fresh venv.

The test extras (httpx, PyYAML, ...) are not there, so a module of the product that needs one of
them undeclared fails here; `scripts/setup` installs `.[test]` and would hide it. Nor is the
compiled fold (native/, optional): the product must run on its pure-Python core. The compiled
fold's wheel, built from source as the Dockerfile builds it, goes into a second fresh venv, which
must import it and, laid over the first, report what the first reports. Slow-ish (venvs and a
non-editable install, from pip's cache), so marked `install`; it runs in the suite all the same.
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

NATIVE = ROOT / "native"
NATIVE_MODULE = "crossing_monitor_native"

pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what `pip install .` reads, so the build's own files (build/, *.egg-info) stay out of the checkout."""
    copy = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, copy / name)
    return copy


def _fresh_venv(path: Path, *requirements: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*pip, *requirements], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return path


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, source: Path) -> Path:
    """A fresh venv holding the project as `pip install .` leaves it: no extras, not editable, no compiled fold."""
    return _fresh_venv(tmp_path_factory.mktemp("install") / "venv", str(source))


def _cargo() -> Path | None:
    """cargo on the PATH, or where rustup puts it (scripts/setup looks in the same two places)."""
    found = shutil.which("cargo")
    home = Path.home() / ".cargo" / "bin" / "cargo"
    return Path(found) if found else home if home.exists() else None


@pytest.fixture(scope="module")
def native_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """native/ built from source as the Dockerfile builds it: `pip wheel ./native` (pip fetches maturin).

    Into the checkout's own cargo build directory, by this interpreter, as scripts/setup builds it, so
    cargo finds what setup compiled and only a change to native/ costs a compile (about a minute); a
    fresh venv's interpreter would be a new one to pyo3 and recompile it every time.
    """
    cargo = _cargo()
    assert cargo, "native/ needs Rust (cargo): https://rustup.rs, then scripts/setup"
    out = tmp_path_factory.mktemp("wheels")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX")}
    env["PATH"] = f"{cargo.parent}{os.pathsep}{env.get('PATH', '')}"
    env["CARGO_TARGET_DIR"] = str(NATIVE / "target")
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps"]
    done = subprocess.run([*pip, "--wheel-dir", str(out), str(NATIVE)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob(f"{NATIVE_MODULE}-*.whl")
    return wheel


@pytest.fixture(scope="module")
def native_venv(tmp_path_factory: pytest.TempPathFactory, native_wheel: Path) -> Path:
    """A fresh venv holding the compiled fold alone (the project's own install is the other venv's)."""
    return _fresh_venv(tmp_path_factory.mktemp("install-native") / "venv", str(native_wheel))


def _site_packages(venv: Path) -> Path:
    (found,) = (venv / "lib").glob("python3*/site-packages")
    return found


def _run(venv: Path, *args: str, cwd: Path, overlay: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A command of the venv, with nothing of the checkout or the test environment on its path (but the overlay)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    if overlay is not None:
        env["PYTHONPATH"] = str(overlay)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "200"  # the table on one line per port
    command = [str(venv / "bin" / args[0]), *args[1:]]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_no_test_extra_is_installed(venv, tmp_path):
    listed = _run(venv, "python", "-m", "pip", "list", "--format=freeze", cwd=tmp_path)
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "crossing-monitor" in names
    assert not names & {"httpx", "pytest", "hypothesis", "selenium", "import-linter", "deptry"}, names
    assert "crossing-monitor-native" not in names, "the compiled fold is optional: not a dependency"


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
    absent = _run(venv, "python", "-c", f"import {NATIVE_MODULE}", cwd=tmp_path)
    assert absent.returncode == 1 and "ModuleNotFoundError" in absent.stderr, "this is the pure-Python core alone"
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


def test_the_compiled_fold_builds_and_imports_in_a_fresh_venv(native_venv, tmp_path):
    script = f"import {NATIVE_MODULE} as m; print(m.__file__); print(type(m.FOLD_VERSION).__name__, m.FOLD_VERSION)"
    done = _run(native_venv, "python", "-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    where, kind, version = done.stdout.split()
    assert Path(where).is_relative_to(native_venv), "imported from the venv, not from the checkout"
    assert kind == "int" and int(version) >= 1


def test_analyze_reports_the_same_with_and_without_the_compiled_fold(venv, native_venv, tmp_path):
    log = tmp_path / "two-ports.jsonl"
    sim = _run(
        venv,
        "crossing-monitor", "simulate", "--ports", "khorgos,alashankou", "--start", "2024-05-01", "--days", "1",
        "--faults", "duplicates=0.05,missed=0.02,skew=300", "--out", str(log), "--no-progress",
        cwd=tmp_path,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    overlay = _site_packages(native_venv)  # the plain venv, with the compiled fold as well
    where = f"import {NATIVE_MODULE}; from crossing_monitor.logs import native; print({NATIVE_MODULE}.__file__)"
    which = "print('compiled' if native.available() else 'python')"  # the fold analyze chooses
    there = _run(venv, "python", "-c", f"{where}; {which}", cwd=tmp_path, overlay=overlay)
    assert there.returncode == 0, there.stderr
    path, fold = there.stdout.split()
    assert Path(path).is_relative_to(overlay) and fold == "compiled", there.stdout
    plain = _run(venv, "python", "-c", f"from crossing_monitor.logs import native; {which}", cwd=tmp_path)
    assert plain.stdout.split() == ["python"], plain.stdout + plain.stderr
    analyze = ("crossing-monitor", "analyze", str(log), "--format", "json", "--no-progress")
    python = _run(venv, *analyze, cwd=tmp_path)
    native = _run(venv, *analyze, cwd=tmp_path, overlay=overlay)
    assert python.returncode == 0 and native.returncode == 0, python.stderr + native.stderr
    report = orjson.loads(python.stdout)
    assert set(report["ports"]) == {"khorgos", "alashankou"} and report["rejected"]["duplicate"] > 0
    assert orjson.loads(native.stdout) == report
