"""``backprop-parity explain``: walk one backward pass layer by layer, the NumPy engine's code
beside the torch autograd nodes and TensorFlow gradient ops that compute the same gradient, with
the max difference of each framework from scratch (:mod:`reports.explain.walk`).

The model is a weight file, a spec file or a catalog model (``--model``, default ``seed-002``:
ReLU/softmax/CCE with LeCun-normal weights), with any spec flags applied on top. The batch is the
``--batch`` MNIST training samples drawn by ``default_rng(seed)`` when the input layer has 784
units, N(0, 1) inputs with random labels (from the same generator) otherwise, reshaped to the
spec's input shape (``--model lenet5``: 1×28×28 maps; ``check``'s ``_batch``); with dropout, the
step-0 masks. Rows dW_l, db_l exist for the spec's ``parameter_layers`` only. Every argument, file
and output path is checked before any framework is imported. Exit status 0 when every difference
is within the tolerance table, 1 when one is not, 2 on bad input. Loading the frameworks and the
walk are announced by one line each on stderr first (:mod:`reports.cli.progress`).
"""

from __future__ import annotations

import argparse

from reports.cli import train as cli_train
from reports.cli.args import add_model_argument
from reports.cli.exit_codes import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARITY_FAILED, EXIT_USAGE
from reports.cli.output_paths import check_outputs
from reports.cli.threads import add_threads_argument, thread_limited

EXIT_STATUSES = (EXIT_OK, EXIT_PARITY_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE)

DEFAULT_MODEL = "seed-002"
# The spec flags of ``train`` that shape one backward pass (batching and epochs do not).
SPEC_FLAGS = {dest: name for dest, name in cli_train.SPEC_FLAGS.items()
              if dest not in ("batch_size", "epochs")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_threads_argument(parser)
    from scratch.spec import DTYPES, HIDDEN_ACTIVATIONS, INITIALIZERS, LOSSES, OUTPUT_ACTIVATIONS

    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", metavar="FILE",
                        help="a shared weight file (.safetensors): spec and weights")
    source.add_argument("--spec", metavar="FILE.json", help="a ModelSpec JSON; weights from its initializer")
    add_model_argument(source, f"its spec, weights from its initializer (default {DEFAULT_MODEL})")
    spec = parser.add_argument_group("model spec (each flag overrides --spec, --model or the default model)")
    spec.add_argument("--layers", type=cli_train._layer_sizes, metavar="N0,N1,...",
                      help=f"layer sizes, input first (default: {DEFAULT_MODEL}'s)")
    spec.add_argument("--hidden", choices=HIDDEN_ACTIVATIONS, help="hidden activation (default: the model's)")
    spec.add_argument("--output", choices=OUTPUT_ACTIVATIONS,
                      help="output activation (default: the model's, or the one the loss needs)")
    spec.add_argument("--loss", choices=LOSSES, help="default: the model's")
    spec.add_argument("--init", choices=INITIALIZERS, help="weight initializer (default: the model's)")
    spec.add_argument("--dtype", choices=DTYPES, help="default: the model's")
    spec.add_argument("--seed", type=int, metavar="N", help="initializer, dropout and random-batch seed")
    spec.add_argument("--l2", type=float, metavar="LAMBDA", help="L2 penalty (lambda/2)*sum ||W||^2")
    spec.add_argument("--dropout", type=float, metavar="P", help="drop probability on hidden layers")
    parser.add_argument("--batch", type=int, default=8, help="samples in the batch (default 8)")
    parser.add_argument("--data-dir", metavar="PATH", help="MNIST folder (default: bundled copy)")
    parser.add_argument("--json", metavar="OUT", help='write {"spec", "batch", "explain": rows} here')


@thread_limited
def run(args: argparse.Namespace) -> int:
    import numpy as np

    from reports.cli.check import _batch
    from scratch.batching import check_batch_statistics, dropout_masks
    from scratch.errors import DataError
    from scratch.model import MLP

    if args.batch < 1:
        raise DataError(f"--batch must be >= 1 (got {args.batch})")
    check_outputs({"--json": args.json})
    spec, weights, biases = build_model(args)
    check_batch_statistics(spec.replace(batch_size=None), args.batch, "--batch")   # one pass of --batch rows
    x, labels = _batch(spec, argparse.Namespace(batch=args.batch, data_dir=args.data_dir, seed=spec.seed), np)
    targets = MLP(spec, weights, biases).targets(labels)

    from reports.cli.progress import progress
    from twins.hygiene import configure_frameworks

    progress("explain", "loading the frameworks")
    configure_frameworks(threads=args.threads or None)

    from reports.explain.walk import explain, format_table

    progress("explain", f"one backward pass of {len(x)} samples, walked in each framework")
    rows = explain(spec, weights, biases, x, targets, dropout_masks(spec, 0, len(x)))
    print(f"spec: {spec.to_json()}")
    print(f"batch: {len(x)} samples; differences are framework − scratch (max |Δ|, then max|Δ|/max|scratch|)")
    print(format_table(rows))
    if args.json is not None:
        write_json(args.json, spec, len(x), rows)
        print(f"\nrows written to {args.json}")
    return 1 if any(row["ok"] is False for row in rows) else 0


def build_model(args: argparse.Namespace):
    """(spec, weights, biases) from ``--weights``, or ``--spec``/the default with the flags on top."""
    from scratch import catalog
    from scratch.errors import SpecError
    from scratch.model import MLP
    from scratch.spec import LOSS_OUTPUTS

    given = [dest for dest in SPEC_FLAGS if getattr(args, dest) is not None]
    changes = {SPEC_FLAGS[dest]: getattr(args, dest) for dest in given}
    if args.weights is not None:
        if given:
            flags = ", ".join(f"--{dest}" for dest in given)
            raise SpecError(f"--weights {args.weights} fixes the spec; drop {flags}")
        from scratch.weights import load_weights

        loaded = load_weights(args.weights)
        return loaded.spec, loaded.weights, loaded.biases
    if args.spec is not None:
        base = cli_train.read_spec_file(args.spec)
    else:
        base = catalog.spec(args.model or DEFAULT_MODEL)
    cli_train.refuse_mlp_flags(base, given, f"--spec {args.spec}" if args.spec is not None
                               else f"--model {args.model or DEFAULT_MODEL}")
    loss = changes.get("loss")
    if loss and "output_activation" not in changes and base.output_activation not in LOSS_OUTPUTS[loss]:
        changes["output_activation"] = LOSS_OUTPUTS[loss][0]
    spec = base.replace(**changes)
    from reports.cli.model_memory import check_model_fits

    check_model_fits(spec, copies=3, batch=getattr(args, "batch", None))
    model = MLP(spec)
    return spec, model.weights, model.biases


def write_json(path, spec, batch: int, rows: list[dict]) -> None:
    """{"command", "spec", "batch", "explain"}; a non-finite difference is written as null."""
    import math

    from reports import json_file

    clean = [{key: None if isinstance(value, float) and not math.isfinite(value) else value
              for key, value in row.items()} for row in rows]
    document = {"command": "explain", "spec": spec.to_dict(), "batch": batch, "explain": clean}
    json_file.write_json(path, document)
