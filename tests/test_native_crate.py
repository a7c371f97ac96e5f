"""The compiled crate's own unit tests (`native/src`, `#[cfg(test)]`), run by cargo as part of the suite.

They hold small readers of the wire format to their general forms (the timestamp reader and the date it
remembers, the usual keys' word-load comparison) where the Python differential tests reach them only
through whole lines. The suite runs after `scripts/setup`, which builds the crate with the same cargo."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cargo() -> str:
    """The cargo scripts/setup builds with: on PATH, else rustup's default place."""
    return shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")


def test_the_crates_unit_tests_pass():
    run = subprocess.run(
        [cargo(), "test", "--lib", "--manifest-path", str(ROOT / "native" / "Cargo.toml")],
        capture_output=True, text=True, timeout=900, env={**os.environ, "CARGO_TERM_COLOR": "never"},
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "test result: ok" in run.stdout and " 0 failed" in run.stdout
    for name in ("wire::tests::timestamps", "wire::tests::key_prefixes"):
        assert f"test {name} ... ok" in run.stdout
