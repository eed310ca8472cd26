"""``backprop-parity check``: run one spec or weight file through every installed backend and
print the per-layer parity table (each framework against the NumPy engine, and torch against
Keras), plus the training curves over a few steps.

The batch is the first ``--batch`` samples of the bundled MNIST when the input layer has 784
units, N(0, 1) inputs with random labels otherwise. Exit code 0 when every quantity is within the
tolerance table, 1 when something is not, 2 on bad input.
"""

from __future__ import annotations

import argparse

PAIRS = [("torch", "scratch"), ("keras", "scratch"), ("keras", "torch")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", metavar="FILE", help="a shared weight file (.safetensors)")
    source.add_argument("--spec", metavar="FILE", help="a ModelSpec JSON; parameters from its initializer")
    parser.add_argument("--batch", type=int, default=64, help="samples in the checked batch (default 64)")
    parser.add_argument("--steps", type=int, default=5, help="training steps compared (default 5; 0 = none)")
    parser.add_argument("--backends", default="scratch,torch,keras",
                        help="comma-separated backends to include (default: all installed)")
    parser.add_argument("--data-dir", metavar="PATH", help="MNIST folder (default: bundled copy)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random batch (default 0)")


def run(args: argparse.Namespace) -> int:
    from reference.hygiene import configure_frameworks

    configure_frameworks()

    import numpy as np

    from reference.backends import available_backends, make_backend
    from reference.parity import compare_traces, format_table
    from reference.training_parity import compare_training
    from scratch.batching import dropout_masks
    from scratch.errors import BackendError, DataError
    from scratch.model import MLP
    from scratch.spec import ModelSpec
    from scratch.weights import load_weights

    if args.batch < 1 or args.steps < 0:
        raise DataError(f"--batch must be >= 1 and --steps >= 0 (got {args.batch}, {args.steps})")
    if args.weights:
        loaded = load_weights(args.weights)
        spec, weights, biases = loaded.spec, loaded.weights, loaded.biases
    else:
        if args.spec:
            from pathlib import Path
            spec = ModelSpec.from_json(Path(args.spec).read_text(), source=args.spec)
        else:
            spec = ModelSpec((784, 64, 32, 10), init="lecun_normal", batch_size=16)
        model = MLP(spec)
        weights, biases = model.weights, model.biases
    model = MLP(spec, weights, biases)
    x, labels = _batch(spec, args, np)
    targets = model.targets(labels)
    masks = dropout_masks(spec, 0, len(x))

    wanted = [name.strip() for name in args.backends.split(",") if name.strip()]
    installed = set(available_backends())
    backends = {}
    print(f"spec: {spec.to_json()}")
    for name in wanted:
        if name not in installed:
            print(f"  {name}: not installed, skipped")
            continue
        try:
            backends[name] = make_backend(name, spec, weights, biases)
        except BackendError as error:
            print(f"  {name}: cannot express this spec, skipped — {error}")
    rows = []
    traces = {name: backend.trace(x, targets, masks) for name, backend in backends.items()}
    for actual, desired in PAIRS:
        if actual in traces and desired in traces:
            for comparison in compare_traces(traces[actual], traces[desired], spec.dtype):
                rows.append((f"{actual} vs {desired}", comparison))
    trainings = []
    if args.steps:
        plan = check_plan(spec, len(x), args.steps)
        for actual, desired in PAIRS:
            if actual in backends and desired in backends:
                try:
                    trainings.append(compare_training(actual, desired, spec, weights, biases, x, targets,
                                                      plan))
                except BackendError as error:
                    print(f"  {actual} vs {desired}: training not compared — {error}")
        for training in trainings:
            rows += [(f"{training.actual} vs {training.desired}", c) for c in training.summary_rows()]
    if not rows:
        print("nothing to compare: fewer than two backends could run this spec")
        return 1
    print(format_table(rows))
    if trainings:
        print(f"\nfree-running over {len(plan)} steps (measured; the per-step rows above are the verdict):")
        for training in trainings:
            status = "ok" if training.trajectory.ok else "FAIL"
            print(f"  {training.actual} vs {training.desired}: {status} — {training.trajectory.verdict()}")
    failed = [row for row in rows if not row[1].ok]
    failed_runs = [t for t in trainings if not t.trajectory.ok]
    total = len(rows) + len(trainings)
    within = total - len(failed) - len(failed_runs)
    print(f"\n{within} of {total} comparisons within tolerance ({spec.dtype}).")
    return 1 if failed or failed_runs else 0


def check_plan(spec, n_samples: int, steps: int) -> list:
    """The first ``steps`` steps of the spec's training plan over ``n_samples`` samples, with
    as many epochs as that takes (a full batch repeats the batch)."""
    import dataclasses
    import itertools

    from scratch.batching import steps_per_epoch, training_plan

    epochs = -(-steps // steps_per_epoch(spec, n_samples))
    return list(itertools.islice(training_plan(dataclasses.replace(spec, epochs=epochs), n_samples), steps))


def _batch(spec, args, np):
    from scratch.errors import DataError

    n_in, n_out = spec.layer_sizes[0], spec.layer_sizes[-1]
    if n_in == 784 and n_out in (10, 1):
        from scratch.datasets import load_mnist

        data = load_mnist(args.data_dir, dtype=np.dtype(spec.dtype))
        if args.batch > len(data.x_train):
            raise DataError(f"--batch {args.batch}: MNIST has only {len(data.x_train)} training samples")
        labels = data.y_train[:args.batch]
        return data.x_train[:args.batch], (labels % 2 if n_out == 1 else labels)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.batch, n_in)).astype(spec.dtype)
    return x, rng.integers(0, 2 if n_out == 1 else n_out, args.batch)
