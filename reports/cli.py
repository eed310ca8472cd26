"""The ``backprop-parity`` command line (also ``python -m reports``).

Each subcommand lives in its own module, named in :data:`COMMANDS` with a one-line help. A
command module defines two functions::

    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int          # the exit code

and imports anything heavy (NumPy, torch, TensorFlow, matplotlib) inside ``run``. Only the
module of the command being run is imported, so ``backprop-parity --help`` starts at once and
no command pays for another's dependencies. Adding a command is one entry in ``COMMANDS`` and
one module.

Every project error (:class:`scratch.errors.ParityError`, a ``ValueError``) ends the run with
one line ``error: <message>`` on stderr and exit code 2, the code argparse uses for usage errors.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

PROG = "backprop-parity"
EXIT_OK = 0
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Command:
    """A subcommand: the module that implements it and its one-line help."""

    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "train": Command("reports.cli_train", "train the NumPy MLP on MNIST, XOR or two spirals"),
    "check": Command("reports.cli_check",
                     "run a spec or weight file through every backend and print the parity table"),
    "bench": Command("reports.cli_bench", "time one training step in every backend, side by side"),
    "report": Command("reports.cli_report",
                      "run the comparison scenarios in every backend; write HTML, Markdown, PNG and JSON"),
    "explain": Command("reports.cli_explain",
                       "walk one backward pass: scratch code beside torch autograd nodes and TF ops"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for every command; only ``command``'s module is imported and given its
    arguments (the others show their one-line help in ``--help``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A from-scratch NumPy MLP beside identical PyTorch and Keras 3 models.",
    )
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                     required=True)
    for name, entry in COMMANDS.items():
        sub = commands.add_parser(name, help=entry.help, description=f"{PROG} {name}: {entry.help}.",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == command:
            module = importlib.import_module(entry.module)
            module.add_arguments(sub)
            sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command and return its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_name(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:                       # --help, or a usage error (already printed)
        return _exit_code(stop.code)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ValueError as error:
        if not _is_parity_error(error):
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR


def _command_name(argv: list[str]) -> str | None:
    """The first positional argument: the command (there are no top-level options with values)."""
    for token in argv:
        if token == "--":
            return None
        if not token.startswith("-"):
            return token if token in COMMANDS else None
    return None


def _exit_code(code) -> int:
    if code is None:
        return EXIT_OK
    return code if isinstance(code, int) else EXIT_ERROR


def _is_parity_error(error: ValueError) -> bool:
    # scratch.errors pulls in NumPy through scratch/__init__; if no command has imported it yet,
    # the error cannot be one of its classes.
    errors = sys.modules.get("scratch.errors")
    return errors is not None and isinstance(error, errors.ParityError)


if __name__ == "__main__":
    raise SystemExit(main())
