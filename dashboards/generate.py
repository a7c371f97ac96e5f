"""Write (or check) every generated file: dashboards JSON and the catalogue's recording rules.

`python -m dashboards.generate` after editing the dashboards' code or the port catalogue;
`python -m dashboards.generate --check` exits 1 when a committed file is stale (the tests do too).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crossing_monitor.core.catalogue import Catalogue, load_catalogue

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
JSON_DIR = PACKAGE_DIR / "json"
RULES_DIR = REPO_DIR / "deploy" / "prometheus" / "rules"
CATALOGUE_RULES = RULES_DIR / "crossing_catalogue.rules.yml"


def dashboard_json(dashboard: dict[str, Any]) -> str:
    """The canonical text of a dashboard: stable key order, so diffs stay small."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def dashboards(catalogue: Catalogue) -> dict[str, dict[str, Any]]:
    """Every dashboard by file name."""
    from dashboards import analyst, wall

    return {"wall.json": wall.build(catalogue), "analyst.json": analyst.build(catalogue)}


def generated_files(catalogue: Catalogue | None = None) -> dict[Path, str]:
    """Path → text of every generated file, for the shipped (or a given) catalogue."""
    from dashboards import catalogue_rules

    catalogue = catalogue or load_catalogue()
    files = {JSON_DIR / name: dashboard_json(d) for name, d in dashboards(catalogue).items()}
    files[CATALOGUE_RULES] = catalogue_rules.render(catalogue)
    return files


def stale_files(catalogue: Catalogue | None = None) -> list[Path]:
    """Generated files whose committed text differs from what the code makes now."""
    return [
        path
        for path, text in generated_files(catalogue).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(REPO_DIR)}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
