"""``backprop-parity explain``: walk one backward pass layer by layer, the NumPy engine's code
beside the torch autograd nodes and TensorFlow gradient ops that compute the same gradient, with
the max difference of each framework from scratch (:mod:`reports.explain.walk`).

The model is resolved by :mod:`reports.cli.model_source` (``--model``, ``--spec``, ``--weights`` or
the default model, spec flags on top: the same flags as ``train``, ``check`` and ``bench``). The
batch is :func:`scratch.data.drawn_batch` of ``--batch`` rows from the spec's seed (MNIST
training samples when the model fits MNIST, N(0, 1) inputs with random labels otherwise), in the
spec's input shape; with dropout, the step-0 masks. Rows d<name>_l (dW_l, db_l; dgamma_l,
dbeta_l; dalpha_l) exist for the spec's ``parameter_layers`` only. Every argument, file and
output path is checked before any framework is imported. Exit status 0 when every difference is
within the tolerance table, 1 when one is not, 2 on bad input. Loading the frameworks and the
walk are announced by one line each on stderr first (:mod:`reports.cli.progress`).
"""

from __future__ import annotations

import argparse
import math

from reports import json_file
from reports.cli.exit_codes import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARITY_FAILED, EXIT_USAGE
from reports.cli.model_memory import check_model_fits
from reports.cli.model_source import add_model_arguments, resolve
from reports.cli.output_paths import check_outputs
from reports.cli.progress import progress
from reports.cli.threads import add_threads_argument, thread_limited
from reports.explain import walk
from scratch.batching import check_batch_statistics, dropout_masks
from scratch.data import drawn_batch
from scratch.errors import DataError
from scratch.model import Network
from twins import hygiene

EXIT_STATUSES = (EXIT_OK, EXIT_PARITY_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_threads_argument(parser)
    parser.add_argument("--batch", type=int, default=8, help="samples in the batch (default 8)")
    parser.add_argument("--data-dir", metavar="PATH", help="MNIST folder (default: bundled copy)")
    parser.add_argument("--json", metavar="OUT", help='write {"spec", "batch", "explain": rows} here')
    add_model_arguments(parser)


@thread_limited
def run(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise DataError(f"--batch must be >= 1 (got {args.batch})")
    check_outputs({"--json": args.json})
    spec, tensors = build_model(args)
    check_batch_statistics(spec.replace(batch_size=None), args.batch, "--batch")   # one pass of --batch rows
    x, labels = drawn_batch(spec, args.batch, spec.seed, args.data_dir)
    targets = Network(spec, tensors=tensors).targets(labels)

    progress("explain", "loading the frameworks")
    hygiene.configure_frameworks(threads=args.threads or None)

    progress("explain", f"one backward pass of {len(x)} samples, walked in each framework")
    rows = walk.explain(spec, tensors, x, targets, dropout_masks(spec, 0, len(x)))
    print(f"spec: {spec.to_json()}")
    print(f"batch: {len(x)} samples; each framework column: exact, ≈ (within the tolerance table) or ✗, "
          "then max|framework − engine|")
    print(walk.format_table(rows))
    if args.json is not None:
        write_json(args.json, spec, len(x), rows)
        print(f"\nrows written to {args.json}")
    return 1 if any(row["ok"] is False for row in rows) else 0


def build_model(args: argparse.Namespace):
    """(spec, named tensors) of the resolved model (:func:`reports.cli.model_source.resolve`)."""
    source = resolve(args)
    if source.loaded is None:
        check_model_fits(source.spec, copies=3, batch=getattr(args, "batch", None))
    tensors, _ = source.parameters()
    return source.spec, tensors


def write_json(path, spec, batch: int, rows: list[dict]) -> None:
    """{"command", "spec", "batch", "explain"}; a non-finite difference is written as null."""
    document = {"command": "explain", "spec": spec.to_dict(), "batch": batch, "explain": rows}
    json_file.write_json(path, finite_or_null(document))


def finite_or_null(document):
    """``document`` with every non-finite float (an infinite difference) replaced by None."""
    if isinstance(document, dict):
        return {key: finite_or_null(value) for key, value in document.items()}
    if isinstance(document, list):
        return [finite_or_null(value) for value in document]
    return None if isinstance(document, float) and not math.isfinite(document) else document
