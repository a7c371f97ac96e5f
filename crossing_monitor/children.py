"""Child processes that end with their parent: what the broker launcher and the demo start.

A child in its own session (so Ctrl-C in a terminal reaches the parent first, which then stops its
children in order) no longer gets the terminal's signals; if the parent is killed outright, it would
be re-parented to PID 1 and run on. Linux's parent-death signal closes that gap.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable


def _set_parent_death_signal() -> None:
    """In the child, before exec: SIGTERM when the parent (its forking thread) dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only: the parent still stops its children itself
        pass


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen, or None where it cannot work.

    The death signal follows the *thread* that forked, so it is armed only from the main thread
    (a worker thread that ends would take the child with it); and it is Linux only.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    return _set_parent_death_signal
