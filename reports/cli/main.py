"""The ``backprop-parity`` command line (also ``python -m reports``).

Each subcommand lives in its own module, named in :data:`COMMANDS` with a one-line help. A
command module defines two functions::

    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int          # the exit code

and imports anything heavy (NumPy, torch, TensorFlow, matplotlib) inside ``run``. Only the
module of the command being run is imported, so ``backprop-parity --help`` starts at once and
no command pays for another's dependencies. Adding a command is one entry in ``COMMANDS`` and
one module.

A command validates every argument, input file and output path before it imports torch,
TensorFlow or JAX, so a bad input is reported at once. Every project error
(:class:`scratch.errors.ParityError`, a ``ValueError``) ends the run with one line
``error: <message>`` on stderr and exit status 2, the status argparse uses for usage errors;
a :class:`reports.cli.exit_codes.CommandError` ends it with its own status. The statuses are defined
once, in :mod:`reports.cli.exit_codes`; a command module may list the ones it uses in
``EXIT_STATUSES`` for its ``--help``. Output closed early (``| head -1``) ends the run quietly
with status 141.

A bare ``backprop-parity`` (no command) prints the help on stdout and exits 0, as pip and cargo
do: asking the tool what it does is not an error. Ctrl-C ends every command with status 130, even
where a library swallows the ``KeyboardInterrupt`` (JAX did, printing "Exception ignored …
KeyboardInterrupt", and the check went on to exit 0): :func:`run_command` records the signal
before raising, and a command that returns after an interrupt returns 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from reports.cli.exit_codes import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    epilog,
)

PROG = "backprop-parity"
DISTRIBUTION = "backprop-parity"


@dataclass(frozen=True)
class Command:
    """A subcommand: the module that implements it and its one-line help."""

    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "train": Command("reports.cli.train",
                     "train a catalog model, spec or weight file on MNIST, XOR or two spirals in the "
                     "NumPy engine or a twin's own loop (--backend torch, keras, jax)"),
    "check": Command("reports.cli.check",
                     "run a catalog model, spec or weight file through every backend and print the "
                     "parity table"),
    "bench": Command("reports.cli.bench",
                     "time one training step of a catalog model in every backend, side by side"),
    "report": Command("reports.cli.report",
                      "run the comparison scenarios in every backend; write HTML, Markdown, PNG and JSON"),
    "explain": Command("reports.cli.explain",
                       "walk one backward pass: the engine's code beside torch autograd nodes, TF ops "
                       "and JAX's jaxpr"),
    "compare": Command("reports.cli.compare",
                       "compare your own two models (a Keras model and its torch port, your NumPy or JAX "
                       "code): every quantity, and the known convention that explains a difference"),
    "study": Command("reports.cli.study",
                     "write the backprop study page of one model: every intermediate, the frameworks' "
                     "records, the annotated graph"),
    "models": Command("reports.cli.models",
                      "list the model catalog by name: the seeds' models, the defaults and the CNNs"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for every command; only ``command``'s module is imported and given its
    arguments (the others show their one-line help in ``--help``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A from-scratch NumPy layer-stack engine beside PyTorch, Keras 3/TensorFlow and "
                    "JAX/optax twins, and the judge that checks they agree.",
        epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_PrintVersion, help="print the version and exit")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                     required=True)
    for name, entry in COMMANDS.items():
        sub = commands.add_parser(name, help=entry.help, description=f"{PROG} {name}: {entry.help}.",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == command:
            module = importlib.import_module(entry.module)
            module.add_arguments(sub)
            statuses = epilog(*getattr(module, "EXIT_STATUSES", ()))
            sub.epilog = f"{sub.epilog}\n\n{statuses}" if sub.epilog else statuses
            sub.set_defaults(handler=module.run)
    return parser


class _PrintVersion(argparse.Action):
    """``--version``: print ``backprop-parity X.Y.Z`` and exit 0. Unlike argparse's own version
    action, a closed stdout is not swallowed: it reaches :func:`main` and exits 141 like every
    other command."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(f"{PROG} {version()}\n")
        sys.stdout.flush()
        parser.exit()


def version() -> str:
    """The installed distribution's version; from a source checkout, pyproject.toml's."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    try:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command and return its exit status
    (:mod:`reports.cli.exit_codes`)."""
    try:
        code = _main(argv)
        sys.stdout.flush()                           # a closed pipe shows up here, not at exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_name(argv))
    if not argv:                                     # a bare `backprop-parity`: the help, exit 0
        parser.print_help()
        return EXIT_OK
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:                       # --help, or a usage error (already printed)
        return _exit_code(stop.code)
    try:
        return run_command(args.handler, args)
    except CommandError as error:
        return _error(error, error.code)
    except MemoryError:                              # past the model-size check (reports.cli.model_memory)
        return _error(MemoryError("out of memory; try a smaller model, batch or --limit"), EXIT_USAGE)
    except ValueError as error:
        if not _is_parity_error(error):
            raise
        return _error(error, EXIT_USAGE)


def run_command(handler, args) -> int:
    """``handler(args)``'s exit status, or 130 after Ctrl-C, however the command ended.

    While the command runs, SIGINT sets a flag and then raises ``KeyboardInterrupt`` as Python's
    own handler does. A library may catch that exception where it cannot propagate (a callback, a
    finalizer: "Exception ignored in …") and the command run on to its end; the flag still turns
    the result into 130 (and so does any error raised after it). The previous handler is
    restored afterwards (none is installed outside the main thread, where Python allows none)."""
    interrupted = []

    def on_sigint(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:                               # not the main thread
        previous = None
    code = EXIT_INTERRUPTED
    try:
        code = handler(args)
    except KeyboardInterrupt:
        interrupted.append(signal.SIGINT)
    except BaseException:                            # an error that followed a swallowed interrupt
        if not interrupted:
            raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if interrupted:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


def _error(error: Exception, code: int) -> int:
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"error: {message}", file=sys.stderr)
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):   # not a real file (e.g. captured by pytest)
        pass


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
    return code if isinstance(code, int) else EXIT_USAGE


def _is_parity_error(error: ValueError) -> bool:
    # scratch.errors pulls in NumPy through scratch/__init__; if no command has imported it yet,
    # the error cannot be one of its classes.
    errors = sys.modules.get("scratch.errors")
    return errors is not None and isinstance(error, errors.ParityError)


if __name__ == "__main__":
    raise SystemExit(main())
