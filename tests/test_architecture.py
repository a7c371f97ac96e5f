"""The floor plan holds: the import contracts of pyproject.toml (import-linter) and the declared
dependencies (deptry) are checked on every test run, and each check is shown to fail on a tree
that breaks it, so a green run means the rules were applied, not that the tools found nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("crossing_monitor", "streams", "producers", "dashboards")
CONTRACTS = 7


def _tool(name: str) -> str:
    """The console script of a test dependency, from this interpreter's environment."""
    found = Path(sys.executable).with_name(name)
    return str(found) if found.exists() else shutil.which(name) or name


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(cwd), NO_COLOR="1", COLUMNS="300")  # one line per verdict
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return _run([_tool("lint-imports"), "pyproject.toml", "--no-cache", "--no-logo"], cwd)


def deptry(cwd: Path) -> subprocess.CompletedProcess[str]:
    return _run([_tool("deptry"), "."], cwd)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the project's packages and pyproject.toml to break on purpose."""
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {CONTRACTS} kept, 0 broken." in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("crossing_monitor/core/events.py", "import aiokafka", "the core is the domain alone"),
        ("crossing_monitor/core/monitor.py", "from crossing_monitor.errors import UserError", "the core is"),
        ("producers/replay.py", "from crossing_monitor.cli import bootstrap_of", "nothing but the command line"),
        ("streams/state.py", "import producers.run", "the applications do not import each other"),
        ("crossing_monitor/kafka/admin.py", "import crossing_monitor.logs.files", "inside crossing_monitor"),
        ("crossing_monitor/logs/table.py", "import streams", "the library packages do not import"),
        ("streams/processor.py", "from streams.adapters import ConsumerSource", "the worker's processor is plain"),
        ("streams/state.py", "import faust", "the worker's processor is plain"),
        ("crossing_monitor/logs/table.py", "import crossing_monitor_native", "only crossing_monitor.logs.native"),
        ("streams/processor.py", "from crossing_monitor_native import FOLD_VERSION", "only crossing_monitor.logs"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tree, module, line, contract):
    _append(tree / module, line)
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    verdicts = [row for row in result.stdout.splitlines() if row.startswith(contract)]
    assert verdicts and verdicts[0].endswith(" BROKEN"), result.stdout


def test_a_module_outside_the_folders_breaks_the_layers(tree):
    (tree / "crossing_monitor" / "helpers.py").write_text('"""Somewhere to put things."""\n')
    result = lint_imports(tree)
    assert result.returncode == 1 and "crossing_monitor.helpers" in result.stdout, result.stdout


OPTIONAL_NATIVE_IMPORT = """
try:
    import crossing_monitor_native
except ImportError:  # the product without the compiled fold: the pure-Python core
    crossing_monitor_native = None
"""


def test_the_glue_alone_may_import_the_optional_compiled_fold(tree):
    """Installed or not, the glue's optional import is neither a broken contract nor an undeclared dependency."""
    glue = tree / "crossing_monitor" / "logs" / "native.py"
    glue.write_text((glue.read_text() if glue.exists() else '"""Glue."""\n') + OPTIONAL_NATIVE_IMPORT)
    linted = lint_imports(tree)
    assert linted.returncode == 0 and f"Contracts: {CONTRACTS} kept, 0 broken." in linted.stdout, linted.stdout
    checked = deptry(tree)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_dependency_is_declared_where_it_is_used():
    result = deptry(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "rule"),
    [
        ("crossing_monitor/cli/demo.py", "import httpx", "DEP004"),  # a test extra in the product
        ("streams/exporter.py", "import mode", "DEP003"),  # only Faust's dependency
        ("dashboards/wall.py", "import requests_oauthlib_unheard_of", "DEP001"),  # not declared at all
    ],
)
def test_an_undeclared_import_is_found(tree, module, line, rule):
    _append(tree / module, line)
    result = deptry(tree)
    assert result.returncode == 1 and rule in result.stdout + result.stderr, result.stdout + result.stderr
