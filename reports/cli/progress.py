"""Progress lines: ``check``, ``explain`` and ``bench`` spend seconds importing frameworks,
building backends and tracing before their first line of output, so each slow phase is announced
first with one short line on stderr (``check: tracing 64 samples in scratch, torch …``). stdout
keeps its format: scripts and tests parse it."""

from __future__ import annotations

import sys


def progress(command: str, what: str) -> None:
    """``<command>: <what> …`` on stderr, flushed at once."""
    print(f"{command}: {what} …", file=sys.stderr, flush=True)
