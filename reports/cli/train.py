"""``backprop-parity train``: train any catalog model (or a spec or weight file) on MNIST, XOR or two
spirals, in the NumPy engine or, with ``--backend``, through torch's, Keras's or JAX's own loop.

The run's :class:`~scratch.spec.ModelSpec` comes from :mod:`reports.cli.model_source` (``--model``,
``--spec``, ``--weights`` or the default model — with ``--dataset NAME``, that dataset's default —
and the spec flags on top), the same resolution as ``check``, ``explain`` and ``bench``. Before
any data is loaded, the input layer must match the dataset's features and the output layer its
classes (or one unit for two classes), the model must fit in memory, the backend's framework must
be installed (else status 3) and every output path must be writable (and distinct). A run diverges
when a step's loss is not finite or exceeds :data:`DIVERGENCE_FACTOR` × max(1, the first step's
loss) — no converging run comes near that — or when a parameter is not finite at the end; it
stops there, writes nothing and exits with status 4 (a framework twin is checked after each
epoch). A run of more than 10⁷ optimizer steps (epochs × ⌈rows / batch⌉: :mod:`reports.cli.work`)
is refused before the first, with status 2.

``--backend torch|keras|jax`` (:mod:`reports.cli.backend_training`) trains from the same start, on
the same batches and dropout masks, and prints the same metrics, measured by the engine's
formulas on the twin's own inference. The frameworks are imported only after every check.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from reports import json_file
from reports.cli import backend_training
from reports.cli.args import positive_int
from reports.cli.exit_codes import (
    EXIT_BACKEND_UNAVAILABLE,
    EXIT_BROKEN_PIPE,
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    BackendUnavailable,
    TrainingDiverged,
)
from reports.cli.model_memory import check_model_fits
from reports.cli.model_source import add_model_arguments, resolve
from reports.cli.models import architecture, training
from reports.cli.output_paths import check_outputs
from reports.cli.progress import progress
from reports.cli.threads import add_threads_argument, thread_limited
from reports.cli.work import check_steps
from scratch.batching import check_batch_statistics, steps_per_epoch
from scratch.catalog import DATASET_DEFAULTS, DATASETS, DEFAULT_MODEL
from scratch.catalog import spec as catalog_spec
from scratch.data import Data, check_fits, load_dataset, shaped
from scratch.errors import ParityError, SpecError
from scratch.model import Network, save_model
from twins.backends import BACKENDS, INSTALL_EXTRAS
from twins.hygiene import configure_frameworks

EXIT_STATUSES = (EXIT_OK, EXIT_USAGE, EXIT_BACKEND_UNAVAILABLE, EXIT_DIVERGED, EXIT_INTERRUPTED,
                 EXIT_BROKEN_PIPE)

DIVERGENCE_FACTOR = 1e6
EVALUATIONS_PER_RUN = 100


@dataclass(frozen=True)
class Result:
    """What one run produced: the History and the final metrics (accuracies in [0, 1])."""

    history: object
    steps: int
    n_train: int
    n_test: int
    wall_time_s: float

    @property
    def final(self) -> dict[str, float | int | None]:
        history = self.history
        return {
            "steps": self.steps,
            "train_samples": self.n_train,
            "test_samples": self.n_test,
            "train_loss": _finite_or_none(history.train_loss[-1]),
            "train_accuracy": _finite_or_none(history.train_accuracy[-1]),
            "test_loss": _finite_or_none(history.test_loss[-1]),
            "test_accuracy": _finite_or_none(history.test_accuracy[-1]),
            "wall_time_s": self.wall_time_s,
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_threads_argument(parser)
    parser.epilog = _defaults_epilog()
    parser.add_argument("--backend", choices=tuple(BACKENDS), default="scratch",
                        help="whose training loop runs (default scratch, the NumPy engine); a framework "
                             "twin trains from the same start on the same batches")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS,
                      help=f"default: the model's dataset, else mnist (default model {DEFAULT_MODEL})")
    data.add_argument("--data-dir", metavar="PATH",
                      help="MNIST folder (default: $BACKPROP_PARITY_DATA, else the bundled copy)")
    data.add_argument("--limit", type=positive_int, metavar="N",
                      help="train on the first N training samples only (the test split is kept whole)")
    add_model_arguments(parser)

    output = parser.add_argument_group("output")
    output.add_argument("--save", metavar="PATH", help="write the trained weights (safetensors) here")
    output.add_argument("--json", metavar="PATH", help="write the history and final metrics (JSON) here")
    output.add_argument("--eval-every", type=positive_int, metavar="N",
                        help=f"measure train/test loss and accuracy every N epochs and after the last "
                             f"(default: about {EVALUATIONS_PER_RUN} times per run)")
    output.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar (it is also off when stdout or stderr is not a terminal)")


@thread_limited
def run(args: argparse.Namespace) -> int:
    source = resolve(args, args.dataset)
    spec = source.spec
    args.dataset = source.dataset.name if args.model is not None else args.dataset or "mnist"
    check_fits(spec, args.dataset)
    check_model_fits(spec)                     # before the data: a full batch counts one block here
    if args.data_dir is not None and args.dataset != "mnist":
        _raise(f"--data-dir applies to --dataset mnist only, not {args.dataset!r}")
    check_backend(args.backend)
    check_outputs({"--save": args.save, "--json": args.json})
    data = shaped(load_dataset(args.dataset, spec.dtype, args.data_dir, args.limit), spec)
    check_work(spec, len(data.x_train))
    check_batch_statistics(spec, len(data.x_train), f"training data ({args.dataset}, --limit/--batch-size)")
    evaluated = max(len(data.x_train), 0 if data.x_test is None else len(data.x_test))
    check_model_fits(spec, batch=min(spec.batch_size or len(data.x_train), len(data.x_train)), rows=evaluated)
    if args.backend == "scratch":
        result, model = train(spec, data, eval_every=args.eval_every, progress=_progress_wanted(args),
                              parameters=source.parameters() if source.loaded is not None else None)
        save, note = (lambda path: save_model(model, path)), None
    else:
        result, backend, note = train_twin(args.backend, spec, source.parameters(), data,
                                           eval_every=args.eval_every, threads=args.threads)
        spec, save = backend.spec, backend.save
    lines = summary_lines(spec, data, result, args.backend, note)
    if args.save is not None:
        _guard_os(args.save, lambda: save(args.save))
        lines.append(f"weights     {args.save}")
    if args.json is not None:
        try:
            _guard_os(args.json, lambda: write_json(args.json, spec, data, result, args.backend))
        except BaseException:
            if args.save is not None:                  # all outputs or none: drop the weight file
                Path(args.save).unlink(missing_ok=True)
            raise
        lines.append(f"history     {args.json}")
    print("\n".join(lines))
    return 0


def check_backend(name: str) -> None:
    """Status 3 unless backend ``name``'s framework is installed (checked without importing it)."""
    needs = BACKENDS[name][2]
    if importlib.util.find_spec(needs) is None:
        raise BackendUnavailable(f"--backend {name} needs {needs}, which is not installed "
                                 f"(pip install 'backprop-parity[{INSTALL_EXTRAS[needs]}]')")


def train_twin(name: str, spec, parameters, data: Data, *, eval_every: int | None, threads: int):
    """Train framework twin ``name`` (:mod:`reports.cli.backend_training`); returns (Result, backend,
    note or None)."""
    progress("train", f"loading {name}")
    configure_frameworks(threads=threads or None)
    spec, note = backend_training.trainable_spec(name, spec)
    steps = steps_per_epoch(spec, len(data.x_train)) * spec.epochs
    watch = _DivergenceWatch(spec, steps)

    def on_losses(first: int, losses: list[float]) -> None:
        for offset, loss in enumerate(losses):
            watch(first + offset, loss)

    progress("train", f"{spec.epochs} epoch(s) of {steps // spec.epochs} step(s) in {name}")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        history, backend, wall = backend_training.train_in_backend(
            name, spec, parameters, data, eval_every=_eval_every(spec, eval_every), on_losses=on_losses)
    _check_finite(spec, [t for layer in backend.tensors() for t in layer.values()], history, steps)
    n_test = 0 if data.x_test is None else len(data.x_test)
    return Result(history, len(history.step_loss), len(data.x_train), n_test, wall), backend, note


def check_work(spec, n_train: int) -> None:
    """Refuse a run of more than :data:`reports.cli.work.MAX_STEPS` optimizer steps
    (epochs × ⌈rows / batch⌉), before the first one."""
    batch = "full batch" if spec.batch_size is None else f"batch {spec.batch_size}"
    check_steps(spec.epochs * steps_per_epoch(spec, n_train),
                f"--epochs {spec.epochs} × ⌈{n_train} training rows / {batch}⌉",
                "lower --epochs, raise --batch-size, or train on fewer rows (--limit)")


def default_spec(dataset: str):
    """The spec of ``dataset``'s default catalog model."""
    return catalog_spec(DATASET_DEFAULTS[dataset])


def train(spec, data: Data, *, eval_every: int | None = None, progress: bool = False, parameters=None):
    """Train a fresh Network(spec) (or one holding ``parameters``: named tensors, statistics) on
    ``data`` in the NumPy engine; return (Result, model).

    Raises :class:`~reports.cli.exit_codes.TrainingDiverged` at the first step whose loss is not
    finite or above ``DIVERGENCE_FACTOR`` × max(1, first loss), or after the run if a parameter
    or an evaluated loss is not finite."""
    if parameters is None:
        model = Network(spec)
    else:
        tensors, statistics = parameters
        model = Network(spec, tensors=tensors, statistics=statistics or None)
    n_train = len(data.x_train)
    steps = steps_per_epoch(spec, n_train) * spec.epochs
    watch = _DivergenceWatch(spec, steps)
    with _ProgressBar(steps, enabled=progress) as bar:

        def on_step(step: int, loss: float) -> None:
            watch(step, loss)
            if progress:
                bar.on_step(step, loss)

        start = time.perf_counter()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):   # reported below instead
            history = model.fit(data.x_train, data.y_train, data.x_test, data.y_test,
                                on_step=on_step, eval_every=_eval_every(spec, eval_every))
        wall_time = time.perf_counter() - start
    _check_finite(spec, model.parameters, history, steps)
    n_test = 0 if data.x_test is None else len(data.x_test)
    return Result(history, len(history.step_loss), n_train, n_test, wall_time), model


def _eval_every(spec, eval_every: int | None) -> int:
    return max(1, spec.epochs // EVALUATIONS_PER_RUN) if eval_every is None else eval_every


class _DivergenceWatch:
    """Called with (step, loss) for every step in order: raises TrainingDiverged at the first loss
    that is not finite or exceeds DIVERGENCE_FACTOR × max(1, the first step's)."""

    def __init__(self, spec, steps: int):
        self.spec, self.steps, self.first = spec, steps, None

    def __call__(self, step: int, loss: float) -> None:
        if self.first is None:
            self.first = loss
        if not math.isfinite(loss):
            _diverged(self.spec, f"the loss is {loss} at step {step + 1} of {self.steps}")
        if loss > DIVERGENCE_FACTOR * max(1.0, self.first):
            _diverged(self.spec, f"the loss reached {loss:.3g} at step {step + 1} of {self.steps}, over "
                                 f"{DIVERGENCE_FACTOR:g} × max(1, the first step's {self.first:.3g})")


def _check_finite(spec, parameters, history, steps: int) -> None:
    if not all(np.all(np.isfinite(p)) for p in parameters):
        _diverged(spec, f"the parameters are not finite after the last step ({steps})")
    if not all(math.isfinite(v) for v in history.train_loss):
        _diverged(spec, "the training loss evaluated after an epoch is not finite")


def _diverged(spec, what: str):
    raise TrainingDiverged(f"training diverged: {what} (learning rate {spec.optimizer.learning_rate:g}); "
                           "no weight or history file written; try a smaller --lr")


def summary_lines(spec, data: Data, result: Result, backend: str = "scratch", note: str | None = None
                  ) -> list[str]:
    final = result.final
    test = (f"{data.name}: {final['train_samples']} train, {final['test_samples']} test"
            if data.x_test is not None else f"{data.name}: {final['train_samples']} train, no test split")
    return [
        f"spec        {describe_spec(spec)}",
        *([f"backend     {backend}" + (f" ({note})" if note else "")] if backend != "scratch" else []),
        f"data        {test}",
        f"steps       {result.steps}",
        f"train loss  {_number(final['train_loss'], '.4f')}",
        f"train acc   {_percent(final['train_accuracy'])}",
        f"test acc    {_percent(final['test_accuracy'])}",
        f"wall time   {result.wall_time_s:.2f} s",
    ]


def describe_spec(spec) -> str:
    """The spec in one line, e.g. ``2-32-32-2 relu/softmax cce he_normal adam[torch] lr=0.02
    b1=0.9 b2=0.999 eps=1e-08, full batch, 200 epochs, seed 0, float64``."""
    opt = spec.optimizer
    hyper = [f"lr={opt.learning_rate:g}"]
    if opt.name == "momentum" or opt.momentum:
        hyper.append(f"momentum={opt.momentum:g}")
    if opt.name == "rmsprop":
        hyper += [f"rho={opt.rho:g}", f"eps={opt.epsilon:g}"]
    if opt.name == "adam":
        hyper += [f"b1={opt.beta1:g}", f"b2={opt.beta2:g}", f"eps={opt.epsilon:g}"]
    parts = [
        f"{_architecture(spec)} {spec.loss} {spec.init} {opt.name}[{opt.convention}] {' '.join(hyper)}",
        "full batch" if spec.batch_size is None else f"batch {spec.batch_size}",
        f"{spec.epochs} epoch{'s' if spec.epochs != 1 else ''}",
        f"seed {spec.seed}",
        spec.dtype,
    ]
    if spec.l2:
        parts.append(f"l2={spec.l2:g}")
    if spec.is_mlp and spec.dropout:
        parts.append(f"dropout={spec.dropout:g}")
    if not spec.shuffle:
        parts.append("no shuffle")
    return ", ".join(parts)


def _architecture(spec) -> str:
    """``2-4-1 tanh/sigmoid`` for the MLP shorthand, else the layer list
    (:meth:`~scratch.spec.ModelSpec.describe_stack`)."""
    try:
        hidden = spec.hidden_activation
    except SpecError:                                  # hidden layers with different activations
        hidden = None
    if not spec.is_mlp or (hidden is None and spec.n_layers > 1):
        return spec.describe_stack()
    if hidden == "leaky_relu":
        hidden += f"({spec.leaky_relu_slope:g})"
    return f"{'-'.join(map(str, spec.layer_sizes))} {hidden}/{spec.output_activation}"


def write_json(path, spec, data: Data, result: Result, backend: str = "scratch") -> None:
    """{"command", "backend", "dataset", "spec", "history", "final"}; NaN (no test split) is written
    as null."""
    document = {
        "command": "train",
        "backend": backend,
        "dataset": data.name,
        "spec": spec.to_dict(),
        "history": {name: [_finite_or_none(v) for v in values]
                    for name, values in result.history.to_dict().items()},
        "final": result.final,
    }
    json_file.write_json(path, document)


class _ProgressBar:
    """A tqdm bar over optimizer steps showing the latest batch loss (a no-op when disabled)."""

    MININTERVAL_S = 0.1

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            self.bar = tqdm(total=total, unit="step", file=sys.stderr, leave=False, dynamic_ncols=True,
                            mininterval=self.MININTERVAL_S)

    def on_step(self, step: int, loss: float) -> None:
        self.bar.set_postfix_str(f"loss={loss:.4f}", refresh=False)
        self.bar.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_wanted(args: argparse.Namespace) -> bool:
    return not args.quiet and _isatty(sys.stdout) and _isatty(sys.stderr)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _guard_os(path, write) -> None:
    """Run ``write()``; an OSError becomes a ParityError naming ``path``."""
    try:
        write()
    except OSError as error:
        _raise(f"{path}: cannot write ({error.strerror or error})")


def _raise(message: str):
    raise ParityError(message)


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _number(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _defaults_epilog() -> str:
    lines = ["dataset defaults, catalog models (optimizer hyperparameters not shown are the framework's "
             "defaults):"]
    for dataset, model in DATASET_DEFAULTS.items():
        default = catalog_spec(model)
        lines.append(f"  {dataset:8} {model}: {architecture(default)} {training(default)}")
    lines.append("")
    lines.append("errors in the spec, the data or a file end the run with 'error: ...' and exit status 2 "
                 "before any work; a diverged run writes nothing and exits with status 4")
    return "\n".join(lines)
