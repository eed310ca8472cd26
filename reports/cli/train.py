"""``backprop-parity train``: train the NumPy layer-stack engine on MNIST, XOR or two spirals.

The run's :class:`~scratch.spec.ModelSpec` is a catalog model (``--model NAME``, which also picks
its dataset; :mod:`scratch.catalog`), the ``--spec`` file, or the dataset's default model
(:data:`scratch.catalog.DATASET_DEFAULTS`), with every flag given on the command line applied on
top. Before any data
is loaded, the input layer must match the dataset's features and the output layer its classes
(or one unit for two classes), the model must fit in memory and every output path must be
writable (and distinct). A run diverges when a step's loss is not finite or exceeds
:data:`DIVERGENCE_FACTOR` × max(1, the first step's loss) — no converging run comes near that —
or when a parameter is not finite at the end; it stops at that step, writes nothing and exits
with status 4. A run of more than 10⁷ optimizer steps (epochs × ⌈rows / batch⌉:
:mod:`reports.cli.work`) is refused before the first, with status 2. Imports NumPy, ``scratch``
and tqdm only inside :func:`run`.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from reports.cli.args import add_model_argument, positive_int
from reports.cli.exit_codes import (
    EXIT_BROKEN_PIPE,
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    TrainingDiverged,
    UsageError,
)
from reports.cli.output_paths import check_outputs
from reports.cli.threads import add_threads_argument, thread_limited

EXIT_STATUSES = (EXIT_OK, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE)

DATASETS = ("mnist", "xor", "spirals")

# Each dataset's default model is a catalog entry (scratch.catalog.DATASET_DEFAULTS). XOR's reaches
# 100 % in 300 full-batch SGD steps for every seed in 0..99 (495 of 0..499; the rest stall in a
# local minimum); spirals' reaches 99.5 % train and test accuracy in 200 full-batch Adam steps.
# (features, classes) of each dataset.
DATASET_SHAPES = {"mnist": (784, 10), "xor": (2, 2), "spirals": (2, 2)}
# Two spirals (1.5 turns): a train and a test draw, fixed whatever the model seed, so runs with
# different seeds see the same data. The train rows are shuffled once (the generator groups them
# by class) so that --limit keeps both classes.
SPIRALS = dict(train_per_class=200, test_per_class=100, noise=0.02, train_seed=0, test_seed=1,
               order_seed=0)

# argparse dest -> ModelSpec field, for the flags that override one field each.
SPEC_FLAGS = {
    "layers": "layer_sizes",
    "hidden": "hidden_activation",
    "output": "output_activation",
    "loss": "loss",
    "init": "init",
    "batch_size": "batch_size",
    "epochs": "epochs",
    "seed": "seed",
    "dtype": "dtype",
    "l2": "l2",
    "dropout": "dropout",
}
FULL_BATCH = "full"
DIVERGENCE_FACTOR = 1e6
EVALUATIONS_PER_RUN = 100


@dataclass(frozen=True)
class Data:
    """A dataset's splits; ``x_test``/``y_test`` are None when it has no test split."""

    name: str
    x_train: object  # (n, features)
    y_train: object  # (n,) int64
    x_test: object | None
    y_test: object | None


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
    from scratch.spec import (
        CONVENTIONS,
        DTYPES,
        HIDDEN_ACTIVATIONS,
        INITIALIZERS,
        LOSSES,
        OPTIMIZERS,
        OUTPUT_ACTIVATIONS,
    )

    parser.epilog = _defaults_epilog()
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS,
                      help="default: the --model's dataset, else mnist")
    data.add_argument("--data-dir", metavar="PATH",
                      help="MNIST folder (default: $BACKPROP_PARITY_DATA, else the bundled copy)")
    data.add_argument("--limit", type=positive_int, metavar="N",
                      help="train on the first N training samples only (the test split is kept whole)")

    spec = parser.add_argument_group("model spec (each flag overrides --spec or the dataset default)")
    start = spec.add_mutually_exclusive_group()
    start.add_argument("--spec", metavar="FILE.json", help="a ModelSpec JSON file to start from")
    add_model_argument(start, "start from its spec and train on its dataset")
    spec.add_argument("--layers", type=_layer_sizes, metavar="N0,N1,...",
                      help="layer sizes, input first, e.g. 2,4,1")
    spec.add_argument("--hidden", choices=HIDDEN_ACTIVATIONS, help="hidden activation")
    spec.add_argument("--output", choices=OUTPUT_ACTIVATIONS, help="output activation")
    spec.add_argument("--loss", choices=LOSSES)
    spec.add_argument("--init", choices=INITIALIZERS, help="weight initializer")
    spec.add_argument("--optimizer", choices=OPTIMIZERS,
                      help="a new optimizer or convention starts from that framework's defaults "
                           "(OptimizerSpec.framework_default); the learning rate and momentum carry "
                           "over while the optimizer's name stays the same")
    spec.add_argument("--convention", choices=CONVENTIONS,
                      help="whose update formula (and defaults) the optimizer follows")
    spec.add_argument("--lr", type=float, metavar="ETA", help="learning rate")
    spec.add_argument("--momentum", type=float, metavar="MU",
                      help="momentum (optimizers momentum and rmsprop)")
    spec.add_argument("--batch-size", type=_batch_size, metavar="N|full",
                      help="samples per step, or 'full' for full batch")
    spec.add_argument("--epochs", type=int, metavar="N")
    spec.add_argument("--seed", type=int, metavar="N", help="initialization, shuffling and dropout seed")
    spec.add_argument("--dtype", choices=DTYPES)
    spec.add_argument("--l2", type=float, metavar="LAMBDA", help="L2 penalty (lambda/2)*sum ||W||^2")
    spec.add_argument("--dropout", type=float, metavar="P", help="drop probability on hidden layers")

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
    from reports.cli.model_memory import check_model_fits

    args.dataset = dataset_of(args)
    spec = build_spec(args)
    check_fits(spec, args.dataset)
    check_model_fits(spec)                     # before the data: a full batch counts one block here
    if args.data_dir is not None and args.dataset != "mnist":
        _raise(f"--data-dir applies to --dataset mnist only, not {args.dataset!r}")
    check_outputs({"--save": args.save, "--json": args.json})
    data = shaped(load_dataset(args.dataset, spec.dtype, args.data_dir, args.limit), spec)
    check_work(spec, len(data.x_train))
    from scratch.batching import check_batch_statistics

    check_batch_statistics(spec, len(data.x_train), f"training data ({args.dataset}, --limit/--batch-size)")
    evaluated = max(len(data.x_train), 0 if data.x_test is None else len(data.x_test))
    check_model_fits(spec, batch=min(spec.batch_size or len(data.x_train), len(data.x_train)), rows=evaluated)
    result, model = train(spec, data, eval_every=args.eval_every, progress=_progress_wanted(args))
    lines = summary_lines(spec, data, result)
    if args.save is not None:
        from scratch.model import save_model

        _guard_os(args.save, lambda: save_model(model, args.save))
        lines.append(f"weights     {args.save}")
    if args.json is not None:
        try:
            _guard_os(args.json, lambda: write_json(args.json, spec, data, result))
        except BaseException:
            if args.save is not None:                  # all outputs or none: drop the weight file
                Path(args.save).unlink(missing_ok=True)
            raise
        lines.append(f"history     {args.json}")
    print("\n".join(lines))
    return 0


def check_work(spec, n_train: int) -> None:
    """Refuse a run of more than :data:`reports.cli.work.MAX_STEPS` optimizer steps
    (epochs × ⌈rows / batch⌉), before the first one."""
    from reports.cli.work import check_steps
    from scratch.batching import steps_per_epoch

    batch = "full batch" if spec.batch_size is None else f"batch {spec.batch_size}"
    check_steps(spec.epochs * steps_per_epoch(spec, n_train),
                f"--epochs {spec.epochs} × ⌈{n_train} training rows / {batch}⌉",
                "lower --epochs, raise --batch-size, or train on fewer rows (--limit)")


def dataset_of(args: argparse.Namespace) -> str:
    """The dataset to train on: ``--dataset``, else the ``--model``'s, else mnist; a ``--dataset``
    that is not the ``--model``'s is a usage error."""
    model = getattr(args, "model", None)
    if model is None:
        return args.dataset or "mnist"
    from scratch.catalog import get_model

    trains_on = get_model(model).dataset
    if args.dataset not in (None, trains_on):
        raise UsageError(f"--model {model} trains on {trains_on}, not --dataset {args.dataset}")
    return trains_on


def build_spec(args: argparse.Namespace):
    """The run's ModelSpec: ``--spec``, ``--model`` or the dataset's default model, with the given
    flags on top."""
    if args.spec is not None:
        base = read_spec_file(args.spec)
    elif getattr(args, "model", None) is not None:
        from scratch.catalog import spec as catalog_spec

        base = catalog_spec(args.model)
    else:
        base = default_spec(args.dataset or "mnist")
    changes = {field: getattr(args, dest) for dest, field in SPEC_FLAGS.items()
               if getattr(args, dest) is not None}
    refuse_mlp_flags(base, [dest for dest in SPEC_FLAGS if getattr(args, dest) is not None],
                     f"--spec {args.spec}" if args.spec is not None else f"--model {args.model}")
    if changes.get("batch_size") == FULL_BATCH:
        changes["batch_size"] = None
    changes["optimizer"] = optimizer_spec(base.optimizer, args.optimizer, args.convention,
                                          args.lr, args.momentum)
    return base.replace(**changes)


def refuse_mlp_flags(base, given: list[str], source: str) -> None:
    """Raise SpecError when ``base`` (from ``source``, e.g. ``--model lenet5``) is not a stack of
    dense layers and a flag of the MLP shorthand (``--layers``, ``--hidden``, ``--output``,
    ``--dropout``: ``given`` holds argparse dests) would rewrite it."""
    from scratch.errors import SpecError
    from scratch.spec import SHORTHAND

    flags = [f"--{dest}" for dest in given if SPEC_FLAGS.get(dest) in SHORTHAND]
    if base.is_mlp or not flags:
        return
    kinds = ", ".join(dict.fromkeys(layer.kind for layer in base.layers))
    describe = "these flags describe" if len(flags) > 1 else "this flag describes"
    raise SpecError(f"{', '.join(flags)}: {describe} a stack of dense layers (the MLP shorthand), "
                    f"but {source} is a {kinds} stack; to "
                    f"change its layers, write its inputs and layers into a ModelSpec JSON file and pass it "
                    f"with --spec (drop {', '.join(flags)})")


def default_spec(dataset: str):
    """The spec of ``dataset``'s default catalog model."""
    from scratch.catalog import DATASET_DEFAULTS, spec

    return spec(DATASET_DEFAULTS[dataset])


def optimizer_spec(base, name=None, convention=None, learning_rate=None, momentum=None):
    """``base`` with the optimizer flags applied (None = not given).

    Same name and convention: ``base`` with the new learning rate and momentum. A new name or
    convention: that framework's defaults, keeping ``base``'s learning rate and momentum when
    only the convention changes; explicit flags win in every case.
    """
    import dataclasses

    from scratch.spec import OptimizerSpec

    name = base.name if name is None else name
    convention = base.convention if convention is None else convention
    overrides = {}
    if name == base.name:
        overrides = {"learning_rate": base.learning_rate, "momentum": base.momentum}
    if learning_rate is not None:
        overrides["learning_rate"] = learning_rate
    if momentum is not None:
        overrides["momentum"] = momentum
    if (name, convention) == (base.name, base.convention):
        return dataclasses.replace(base, **overrides)
    return OptimizerSpec.framework_default(name, convention, **overrides)


def read_spec_file(path):
    """The ModelSpec in the JSON file at ``path``; every problem is one SpecError naming it."""
    from reports.cli.text_file import read_text
    from scratch.errors import SpecError
    from scratch.spec import ModelSpec

    text = read_text(path, SpecError)
    try:
        return ModelSpec.from_json(text, source=str(path))
    except SpecError as error:
        _refuse_command_output(path, text)
        message = str(error)
        if message.startswith(f"{path}:"):
            raise
        raise SpecError(f"{path}: {message}") from None


def _refuse_command_output(path, text: str) -> None:
    """Raise SpecError saying what the file is when ``text`` is a command's JSON output with the
    run's spec inside under ``"spec"`` (``train --json``, ``explain --json``: a ``"command"``
    field; ``check --json``: a ``"verdict"`` field) rather than a ModelSpec."""
    import json

    from scratch.errors import SpecError

    try:
        data = json.loads(text)
    except ValueError:
        return
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
        return
    contents = {"train": "a run's history and final metrics", "explain": "one backward pass, row by row"}
    if isinstance(data.get("command"), str):
        command = data["command"]
        what = f"the output of `backprop-parity {command} --json` ({contents.get(command, 'its results')})"
    elif "verdict" in data:
        what = "the output of `backprop-parity check --json` (a parity verdict and its comparisons)"
    else:
        return
    raise SpecError(f"{path}: this is {what}, not a ModelSpec; --spec expects a ModelSpec JSON object "
                    "(inputs and layers, or layer_sizes, …). The run's spec is inside this file under the "
                    "key \"spec\": write that object to a file of its own (e.g. `jq .spec "
                    f"{path} > spec.json`) and pass that")


def check_fits(spec, dataset: str) -> None:
    """Raise SpecError unless the first layer has the dataset's features and the last one its
    classes (or a single unit for two classes)."""
    from scratch.errors import SpecError

    features, classes = DATASET_SHAPES[dataset]
    n_in = math.prod(spec.input_shape)
    n_out = spec.layer_shapes[-1][0]
    field = "layer_sizes" if spec.is_mlp else "inputs"
    if n_in != features:
        raise SpecError(f"spec field '{field}': the input layer has {n_in} units but dataset "
                        f"{dataset!r} has {features} features (choose with --dataset or --layers)")
    allowed = (classes, 1) if classes == 2 else (classes,)
    if n_out not in allowed:
        expected = " or ".join(str(n) for n in allowed)
        field = "layer_sizes" if spec.is_mlp else f"layers[{len(spec.layers) - 1}].units"
        raise SpecError(f"spec field '{field}': the output layer has {n_out} units but dataset "
                        f"{dataset!r} has {classes} classes (expected {expected} output units)")


def load_dataset(name: str, dtype: str, data_dir=None, limit: int | None = None) -> Data:
    """The splits of ``name`` in ``dtype``, the training split cut to its first ``limit`` rows."""
    import numpy as np

    from scratch import datasets

    if name == "mnist":
        splits = datasets.load_mnist(data_dir, dtype=dtype)
        data = Data(name, splits.x_train, splits.y_train, splits.x_test, splits.y_test)
    elif name == "xor":
        x, y = datasets.xor(dtype)
        data = Data(name, x, y, None, None)
    elif name == "spirals":
        s = SPIRALS
        x, y = datasets.two_spirals(s["train_per_class"], noise=s["noise"], seed=s["train_seed"],
                                    dtype=dtype)
        order = np.random.default_rng(s["order_seed"]).permutation(len(x))
        x_test, y_test = datasets.two_spirals(s["test_per_class"], noise=s["noise"],
                                              seed=s["test_seed"], dtype=dtype)
        data = Data(name, x[order], y[order], x_test, y_test)
    else:
        _raise(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if limit is not None:
        data = Data(name, data.x_train[:limit], data.y_train[:limit], data.x_test, data.y_test)
    return data


def shaped(data: Data, spec) -> Data:
    """``data`` with each sample in the spec's input shape: the datasets hold flat rows (n,
    features); a spec on (C, H, W) maps gets them reshaped (row-major: MNIST's 784 pixels are its
    28 rows of 28, one channel). :func:`check_fits` has checked that the sizes agree."""
    if len(spec.input_shape) == 1:
        return data

    def reshape(x):
        return None if x is None else x.reshape(len(x), *spec.input_shape)

    return Data(data.name, reshape(data.x_train), data.y_train, reshape(data.x_test), data.y_test)


def train(spec, data: Data, *, eval_every: int | None = None, progress: bool = False):
    """Train a fresh MLP(spec) on ``data``; return (Result, model).

    Raises :class:`~reports.cli.exit_codes.TrainingDiverged` at the first step whose loss is not
    finite or above ``DIVERGENCE_FACTOR`` × max(1, first loss), or after the run if a parameter
    or an evaluated loss is not finite."""
    import time

    import numpy as np

    from scratch.batching import steps_per_epoch
    from scratch.model import Network

    model = Network(spec)
    n_train = len(data.x_train)
    steps = steps_per_epoch(spec, n_train) * spec.epochs
    if eval_every is None:
        eval_every = max(1, spec.epochs // EVALUATIONS_PER_RUN)
    with _ProgressBar(steps, enabled=progress) as bar:

        first: list[float] = []

        def on_step(step: int, loss: float) -> None:
            first[:] = first or [loss]
            if not math.isfinite(loss):
                _diverged(spec, f"the loss is {loss} at step {step + 1} of {steps}")
            if loss > DIVERGENCE_FACTOR * max(1.0, first[0]):
                _diverged(spec, f"the loss reached {loss:.3g} at step {step + 1} of {steps}, over "
                                f"{DIVERGENCE_FACTOR:g} × max(1, the first step's {first[0]:.3g})")
            if progress:
                bar.on_step(step, loss)

        start = time.perf_counter()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):   # reported below instead
            history = model.fit(data.x_train, data.y_train, data.x_test, data.y_test,
                                on_step=on_step, eval_every=eval_every)
        wall_time = time.perf_counter() - start
    if not all(np.all(np.isfinite(p)) for p in model.parameters):
        _diverged(spec, f"the parameters are not finite after the last step ({steps})")
    if not all(math.isfinite(v) for v in history.train_loss):
        _diverged(spec, "the training loss evaluated after an epoch is not finite")
    n_test = 0 if data.x_test is None else len(data.x_test)
    return Result(history, len(history.step_loss), n_train, n_test, wall_time), model


def _diverged(spec, what: str):
    raise TrainingDiverged(f"training diverged: {what} (learning rate {spec.optimizer.learning_rate:g}); "
                           "no weight or history file written; try a smaller --lr")


def summary_lines(spec, data: Data, result: Result) -> list[str]:
    final = result.final
    test = (f"{data.name}: {final['train_samples']} train, {final['test_samples']} test"
            if data.x_test is not None else f"{data.name}: {final['train_samples']} train, no test split")
    return [
        f"spec        {describe_spec(spec)}",
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
    from scratch.errors import SpecError

    try:
        hidden = spec.hidden_activation
    except SpecError:                                  # hidden layers with different activations
        hidden = None
    if not spec.is_mlp or (hidden is None and spec.n_layers > 1):
        return spec.describe_stack()
    if hidden == "leaky_relu":
        hidden += f"({spec.leaky_relu_slope:g})"
    return f"{'-'.join(map(str, spec.layer_sizes))} {hidden}/{spec.output_activation}"


def write_json(path, spec, data: Data, result: Result) -> None:
    """{"command", "dataset", "spec", "history", "final"}; NaN (no test split) is written as null."""

    document = {
        "command": "train",
        "dataset": data.name,
        "spec": spec.to_dict(),
        "history": {name: [_finite_or_none(v) for v in values]
                    for name, values in result.history.to_dict().items()},
        "final": result.final,
    }
    from reports import json_file

    json_file.write_json(path, document)


class _ProgressBar:
    """A tqdm bar over optimizer steps showing the latest batch loss (a no-op when disabled)."""

    MININTERVAL_S = 0.1

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

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
    from scratch.errors import ParityError

    raise ParityError(message)


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _number(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _layer_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 2,4,1 (input first), got {text!r}") from None


def _batch_size(text: str):
    if text == FULL_BATCH:
        return FULL_BATCH
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'full', got {text!r}") from None


def _defaults_epilog() -> str:
    from reports.cli.models import architecture, training
    from scratch.catalog import DATASET_DEFAULTS, spec

    lines = ["dataset defaults, catalog models (optimizer hyperparameters not shown are the framework's "
             "defaults):"]
    for dataset, model in DATASET_DEFAULTS.items():
        default = spec(model)
        lines.append(f"  {dataset:8} {model}: {architecture(default)} {training(default)}")
    lines.append("")
    lines.append("errors in the spec, the data or a file end the run with 'error: ...' and exit status 2 "
                 "before any work; a diverged run writes nothing and exits with status 4")
    return "\n".join(lines)
