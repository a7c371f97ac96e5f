"""One line for the person at the terminal: progress and notices go to standard error, flushed at
once, so they show up while a command works and never mix with a log or table written to stdout."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

__all__ = ["say", "speaker"]


def say(message: str, prefix: str = "") -> None:
    """Print `message` (after `prefix`) to stderr now."""
    print(f"{prefix}{message}", file=sys.stderr, flush=True)


def speaker(prefix: str) -> Callable[[str], None]:
    """A `say` whose every line starts with `prefix`, e.g. the command's name."""
    return functools.partial(say, prefix=prefix)
