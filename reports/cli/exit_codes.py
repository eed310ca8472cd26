"""The exit statuses of every ``backprop-parity`` command, defined once.

A command returns one of these (or raises :class:`CommandError`, which :func:`reports.cli.main.main`
turns into one ``error: <message>`` line on stderr and the error's status). The same table is
printed by ``--help`` (:data:`EPILOG`) and listed in ``docs/cli.md`` ("Exit status").
"""

from __future__ import annotations

EXIT_OK = 0                    # success; check/explain/report: every comparison within tolerance
EXIT_PARITY_FAILED = 1         # check/explain/report found a disagreement beyond the tolerance table
EXIT_USAGE = 2                 # a usage or input error (bad flag, file, spec, data or output path)
EXIT_BACKEND_UNAVAILABLE = 3   # a requested backend is not installed, or fewer than two could run
EXIT_DIVERGED = 4              # train: the loss or the parameters became non-finite
EXIT_INTERRUPTED = 130         # Ctrl-C
EXIT_BROKEN_PIPE = 141         # stdout closed early (e.g. `| head -1`): quiet, no traceback

STATUSES = {
    EXIT_OK: "success (check, explain, report: every comparison within tolerance; compare: A and B "
             "are one model, or differ only by what their frameworks fix)",
    EXIT_PARITY_FAILED: "parity failure: check, explain or report found a disagreement beyond the "
                        "tolerance table (report: its verdict line, printed last, says which); "
                        "compare: B differs from A, or a side's own code is not what its reading says",
    EXIT_USAGE: "usage or input error (a flag, file, spec, data set or output path)",
    EXIT_BACKEND_UNAVAILABLE: "a requested backend is not installed, or fewer than two backends "
                              "could run (nothing to compare)",
    EXIT_DIVERGED: "train: the run diverged (non-finite loss or parameters); no weight file is written",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_BROKEN_PIPE: "stdout was closed early (e.g. piped into `head`); nothing more is printed",
}


def epilog(*codes: int) -> str:
    """The exit-status table for ``--help``: ``codes`` (default: all of them)."""
    lines = ["exit status:"]
    lines += [f"  {code:<4}{STATUSES[code]}" for code in (codes or STATUSES)]
    return "\n".join(lines)


class CommandError(Exception):
    """Ends a command with ``error: <message>`` on stderr and exit status ``code``."""

    code = EXIT_USAGE

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageError(CommandError):
    """A bad flag value, found before any work starts (exit 2)."""

    code = EXIT_USAGE


class BackendUnavailable(CommandError):
    """A backend the user asked for is not installed, or fewer than two could run (exit 3)."""

    code = EXIT_BACKEND_UNAVAILABLE


class TrainingDiverged(CommandError):
    """The training loss or parameters became non-finite (exit 4)."""

    code = EXIT_DIVERGED
