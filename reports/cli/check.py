"""``backprop-parity check``: run one spec or weight file through every installed backend and print the
verdict first (one line: every comparison within tolerance, or the worst that are not), then the
per-layer parity table (the pairs of ``twins.backends.PAIRS``: each framework against the NumPy
engine, and the frameworks against each other) — the checked batch's forward and backward pass in
training mode, then its outputs Z_L and A_L in inference mode with BatchNorm's running statistics
(the weight file's, loaded into every backend: ``judge.inference_parity``) — and training over
``--steps`` steps: every step re-synchronized (the verdict on training) and the free-running
trajectories measured and explained (``judge.training_parity``; where the engine is a side and its
own higher-precision run cannot say which side is off, the first installed twin of
``twins.backends.REFEREES`` that is neither side referees in float64, whether or not ``--backends``
named it). ``--json FILE`` writes the same as data.

The model is resolved by :mod:`reports.cli.model_source` (``--model``, ``--spec``, ``--weights`` or
the default model, spec flags on top: the same flags as ``train``, ``explain`` and ``bench``). The
batch is :func:`scratch.data.drawn_batch`: ``--batch`` MNIST training samples drawn without
replacement by ``numpy.random.default_rng(seed)`` (the spec's seed, ``--seed``) when the model fits
MNIST, N(0, 1) inputs with random labels from the same generator otherwise. Every argument and input
file is checked by :func:`validate` before any framework is imported. Exit status 0 when every
quantity is within the tolerance table, 1 when something is not, 2 on bad input, 3 when a requested
backend is not installed or fewer than two backends could run. Each slow phase (loading the
frameworks, building the backends, the traced batch, the training steps) is announced by one line on
stderr first.

A float32 spec with a BatchNorm, LayerNorm or global average pooling also has every pair compared
in float64 (rows labelled ``… f64``; ``judge.float64_companion``): a real error of such a layer
can be smaller than its float32 rounding over many values, never than its float64 rounding.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import shlex

from judge import float64_companion, inference_parity, parity, training_parity
from reports.cli.exit_codes import (
    EXIT_BACKEND_UNAVAILABLE,
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARITY_FAILED,
    EXIT_USAGE,
    BackendUnavailable,
    UsageError,
)
from reports.cli.model_memory import check_model_fits
from reports.cli.model_source import add_model_arguments, resolve, source_arguments
from reports.cli.output_paths import check_outputs
from reports.cli.progress import progress
from reports.cli.threads import add_threads_argument, thread_limited
from reports.cli.work import check_steps
from reports.verdict.check import Verdict
from scratch.batching import check_batch_statistics, dropout_masks, steps_per_epoch, training_plan
from scratch.data import drawn_batch
from scratch.errors import BackendError, DataError
from scratch.model import Network
from twins import backends as twin_backends
from twins import hygiene
from twins.backends import BACKENDS, PAIRS, REFEREES

EXIT_STATUSES = (EXIT_OK, EXIT_PARITY_FAILED, EXIT_USAGE, EXIT_BACKEND_UNAVAILABLE, EXIT_INTERRUPTED,
                 EXIT_BROKEN_PIPE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_threads_argument(parser)
    parser.add_argument("--batch", type=int, default=64,
                        help="samples in the checked batch (default 64); the training steps take the spec's "
                             "batches of it")
    parser.add_argument("--steps", type=int, default=5, help="training steps compared (default 5; 0 = none)")
    parser.add_argument("--backends", metavar="NAME,...",
                        help="comma-separated, from scratch, torch, keras, jax (default: every installed "
                             "one); "
                             "one asked for by name that is not installed ends the run with status 3")
    parser.add_argument("--data-dir", metavar="PATH", help="MNIST folder (default: bundled copy)")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the verdict and every comparison as JSON (checked writable first)")
    add_model_arguments(parser)


def validate(args: argparse.Namespace):
    """Check every argument and load the model (NumPy only, before any framework import);
    returns ``(spec, tensors, statistics, backends)``: the named tensors of every layer with
    parameters, BatchNorm's running statistics (the weight file's, else the initial 0 and 1) and
    the backends to run, in order."""
    if args.batch < 1 or args.steps < 0:
        raise DataError(f"--batch must be >= 1 and --steps >= 0 (got {args.batch}, {args.steps})")
    check_steps(args.steps, f"--steps {args.steps}", "compare fewer steps")
    installed = twin_backends.available_backends()
    if args.backends is None:
        backends = installed
    else:
        backends = [name.strip() for name in args.backends.split(",")]
        for name in backends:
            if name not in BACKENDS:
                raise UsageError(f"--backends: unknown backend {name!r}; "
                                 f"expected one of {', '.join(BACKENDS)}")
        if len(set(backends)) != len(backends):
            raise UsageError(f"--backends {args.backends}: a backend is listed twice")
    # Input files next (status 2 whatever is installed), then what can run (status 3).
    source = resolve(args)
    spec = source.spec
    if source.loaded is None:
        check_model_fits(spec, max(len(backends), 2), batch=args.batch)
    tensors, statistics = source.parameters()
    # the checked batch is one pass of --batch rows, and the steps batches of it (the spec's plan)
    check_batch_statistics(spec if args.steps else spec.replace(batch_size=None), args.batch, "--batch")
    missing = [name for name in backends if name not in installed]
    if missing:
        needs = BACKENDS[missing[0]][2]
        raise BackendUnavailable(f"--backends: backend {missing[0]!r} needs {needs}, which is not "
                                 f"installed (installed: {', '.join(installed)})")
    if len(backends) < 2:
        raise BackendUnavailable(f"nothing to compare: the backends to run are "
                                 f"{', '.join(backends) or 'none'} (installed: {', '.join(installed)}); "
                                 "a check needs at least two")
    return spec, tensors, statistics, backends


@thread_limited
def run(args: argparse.Namespace) -> int:
    spec, tensors, statistics, wanted = validate(args)
    check_outputs({"--json": args.json})
    model = Network(spec, tensors=tensors, statistics=statistics)
    x, labels = drawn_batch(spec, args.batch, spec.seed, args.data_dir)   # checked before any framework
    targets = model.targets(labels)
    masks = dropout_masks(spec, 0, len(x))

    progress("check", "loading the frameworks")
    hygiene.configure_frameworks(threads=args.threads or None)

    skipped = {name: "not installed" for name in BACKENDS if name not in wanted and args.backends is None}
    notes, backends = [], {}
    progress("check", f"building the backends {', '.join(wanted)}")
    for name in wanted:
        try:
            backends[name] = twin_backends.make_backend(name, spec, statistics=statistics, tensors=tensors)
        except BackendError as error:
            skipped[name] = "cannot express this spec"
            notes.append(f"  {name}: cannot express this spec, skipped — {error}")
    rows = []
    progress("check", f"one forward and backward pass of {len(x)} samples in each backend")
    traces = {name: backend.trace(x, targets, masks) for name, backend in backends.items()}
    inferred = {name: backend.inference_outputs(x) for name, backend in backends.items()}
    for actual, desired in PAIRS:
        if actual in traces and desired in traces:
            compared = parity.compare_backend_traces(traces[actual], traces[desired], backends[desired], x,
                                                     masks, targets=targets, actual_backend=backends[actual])
            for comparison in compared:
                rows.append((f"{actual} vs {desired}", comparison))
            rows += [(f"{actual} vs {desired}", comparison) for comparison in
                     inference_parity.compare_inference(inferred[actual], inferred[desired], spec.dtype,
                                                        spec.n_layers)]
    if float64_companion.needs_float64(spec):
        progress("check", "the same pairs in float64 (a float32 spec with long reductions)")
        rows += float64_companion.float64_rows(backends, x, targets, masks, PAIRS)
    trainings, plan = [], []
    if args.steps:
        plan = check_plan(spec, len(x), args.steps)
        progress("check", f"{len(plan)} training step(s) in each backend pair")
        for actual, desired in PAIRS:
            if actual in backends and desired in backends:
                try:
                    trainings.append(training_parity.compare_training(
                        actual, desired, spec, tensors, x, targets, plan,
                        make_backend=twin_backends.make_backend, referees=REFEREES))
                except BackendError as error:
                    skipped[f"{actual} vs {desired} training"] = "cannot express this spec"
                    notes.append(f"  {actual} vs {desired}: training not compared — {error}")
        for training in trainings:
            rows += [(f"{training.actual} vs {training.desired}", c) for c in training.summary_rows()]
    if not rows:
        raise BackendUnavailable("nothing to compare: fewer than two backends could run this spec ("
                                 + "; ".join(f"{name}: {why}" for name, why in skipped.items()) + ")")
    verdict = Verdict(spec, rows, trainings, list(backends), skipped, len(plan), reproduce_command(args))
    print(verdict.headline())
    print(f"spec: {spec.to_json()}")
    for line in notes:
        print(line)
    print(parity.format_table(rows))
    for note in dict.fromkeys(c.note for _, c in rows if c.note):      # each adjustment once, in order
        print(f"  * {note}")
    if trainings:
        print(f"\nfree-running over {len(plan)} steps (measured and explained; the per-step rows above "
              "are the verdict on training):")
        for training in trainings:
            status = "ok" if training.trajectory.ok else "FAIL"
            print(f"  {training.actual} vs {training.desired}: {status} — {training.trajectory.verdict()}")
    for line in verdict.failure_details():
        print(line)
    print(f"\n{summary_line(verdict.total, verdict.failed_count, spec.dtype, list(backends), skipped)}")
    if args.json:
        verdict.write_json(args.json)
        print(f"json: {args.json}")
    return EXIT_OK if verdict.ok else EXIT_PARITY_FAILED


def check_plan(spec, n_samples: int, steps: int) -> list:
    """The first ``steps`` steps of the spec's training plan over ``n_samples`` samples, with
    as many epochs as that takes (a full batch repeats the batch)."""
    epochs = -(-steps // steps_per_epoch(spec, n_samples))
    return list(itertools.islice(training_plan(dataclasses.replace(spec, epochs=epochs), n_samples), steps))


def reproduce_command(args: argparse.Namespace) -> str:
    """The ``backprop-parity check`` command line that repeats this run."""
    parts = ["backprop-parity", "check", *source_arguments(args)]
    parts += ["--batch", str(args.batch), "--steps", str(args.steps)]
    if args.backends:
        parts += ["--backends", args.backends]
    if args.data_dir:
        parts += ["--data-dir", args.data_dir]
    return shlex.join(parts)


def summary_line(total: int, failed: int, dtype: str, ran: list[str], skipped: dict[str, str]) -> str:
    """E.g. ``13 of 13 comparisons within tolerance (float64), backends scratch, torch; skipped:
    keras (not installed).`` — a skipped backend is always named, with why."""
    line = f"{total - failed} of {total} comparisons within tolerance ({dtype}), backends {', '.join(ran)}"
    if skipped:
        line += "; skipped: " + ", ".join(f"{name} ({why})" for name, why in skipped.items())
    return line + "."
