"""Thread limits for the commands: every BLAS/OpenMP pool (threadpoolctl) and torch's intra-op
pool, so a run does not oversubscribe a small machine.

On a busy small machine a BLAS pool of default size made a 2-epoch MNIST ``train`` about ten
times slower than one thread, with the same result; on a quiet machine the two are within noise
(the timings are in ``docs/cli.md``). So ``train``, ``check``, ``explain`` and
``report`` default to one thread; ``--threads 0`` keeps each library's default.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import sys

from reports.cli.exit_codes import UsageError


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="threads for NumPy's BLAS and every framework (default 1: no oversubscription "
                             "on a small machine; 0 = each library's default)")


def check_threads(threads: int) -> None:
    if threads < 0:
        raise UsageError(f"--threads must be >= 0 (0 = each library's default), got {threads}")


@contextlib.contextmanager
def limit_threads(threads: int):
    """At most ``threads`` threads in every BLAS/OpenMP library loaded (threadpoolctl) and in
    torch's intra-op pool, restored afterwards; 0 changes nothing. TensorFlow's pools cannot be
    resized once it has started (``twins.hygiene.configure_frameworks`` sizes them first)."""
    if threads == 0:
        yield
        return
    with contextlib.ExitStack() as stack:
        if importlib.util.find_spec("threadpoolctl") is not None:
            import numpy  # noqa: F401  (loads the BLAS whose pool is limited)
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=threads))
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            previous = torch.get_num_threads()
            torch.set_num_threads(threads)
            stack.callback(torch.set_num_threads, previous)
        yield


def thread_limited(run):
    """``run(args)`` inside :func:`limit_threads` (``args.threads``), after checking the value."""

    @functools.wraps(run)
    def limited(args: argparse.Namespace) -> int:
        check_threads(args.threads)
        with limit_threads(args.threads):
            return run(args)

    return limited
