"""Shared by the simulator's tests: a parser with simulate/record/replay, and reading logs back."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import orjson

from crossing_monitor import cli


def parser() -> argparse.ArgumentParser:
    """The three producer commands, built by cli.py's own functions (registered or not)."""
    p = argparse.ArgumentParser(prog="crossing-monitor")
    sub = p.add_subparsers(dest="command")
    for add in (cli._add_simulate, cli._add_record, cli._add_replay):
        add(sub)
    return p


def run_cli(*argv: str) -> int:
    """Run one command as `crossing-monitor` would: a UserError is exit 2 with its message on stderr."""
    import sys

    args = parser().parse_args(list(argv))
    try:
        return cli._handler(args.handler)(args)
    except cli.UserError as exc:
        print(f"crossing-monitor {args.command}: {exc}", file=sys.stderr)
        return 2


def objects(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        yield orjson.loads(line)
