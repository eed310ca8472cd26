"""Which model a command runs: ``--model``, ``--spec`` or ``--weights``, with the spec flags on top —
one set of flags, one meaning and one default (:data:`scratch.catalog.DEFAULT_MODEL`) in ``train``,
``check``, ``explain`` and ``bench``.

The source is at most one of

* ``--model NAME``  a catalog model (:mod:`scratch.catalog`): its spec, parameters from its initializer;
* ``--spec FILE``   a ModelSpec JSON file: the spec, parameters from its initializer;
* ``--weights FILE`` a shared weight file: its spec and its parameters (and running statistics);

and none of them means the default model (``train --dataset NAME``: that dataset's default). Each
spec flag then overrides one field of the spec (:data:`SPEC_FLAGS`; the optimizer flags go through
:func:`optimizer_spec`). A weight file fixes the model: with ``--weights``, a flag of
:data:`MODEL_FLAGS` (the architecture, activations, loss, initializer, dtype, L2, dropout) is an
error; the training flags (optimizer, learning rate, batch, epochs, seed) apply. The MLP shorthand
flags (``--layers``, ``--hidden``, ``--output``, ``--dropout``) are an error on a stack that is not
dense layers. ``--loss`` alone also switches the output activation to one the loss reads, when the
base's does not fit it. Every such conflict is one :class:`~scratch.errors.SpecError` naming the
flags (exit status 2); two sources at once are argparse's usage error (exit status 2).

:func:`resolve` does all of this with NumPy and the standard library only: no framework is imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from pathlib import Path

from reports.cli.args import model_name, non_negative_int
from reports.cli.exit_codes import UsageError
from reports.cli.text_file import read_text
from scratch import catalog
from scratch.errors import SpecError
from scratch.model import Network
from scratch.spec import (
    CONVENTIONS,
    DTYPES,
    HIDDEN_ACTIVATIONS,
    INITIALIZERS,
    LOSS_OUTPUTS,
    LOSSES,
    OPTIMIZERS,
    OUTPUT_ACTIVATIONS,
    SHORTHAND,
    ModelSpec,
    OptimizerSpec,
)
from scratch.weights import load_weights

DEFAULT_MODEL = catalog.DEFAULT_MODEL
FULL_BATCH = "full"

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
OPTIMIZER_FLAGS = ("optimizer", "convention", "lr", "momentum", "weight_decay", "decay_form")
DECAY_FORMS = ("coupled", "decoupled")
OWN_DECAY_FORM = {"torch": "coupled", "keras": "decoupled", "optax": "coupled"}
"""The form ``--weight-decay`` takes without ``--decay-form`` on a spec that decays nothing yet: each
convention's own optimizers' (torch's and optax's ``weight_decay``/``add_decayed_weights``, Keras's
``weight_decay``)."""
# The flags a weight file fixes (its parameters were trained with them).
MODEL_FLAGS = ("layers", "hidden", "output", "loss", "init", "dtype", "l2", "dropout")


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A resolved model: the spec, the weight file's contents (None: the spec's initializer), the
    facts of the dataset it belongs to, and where it came from (``--model lenet5``, …)."""

    spec: ModelSpec
    loaded: object | None                    # scratch.weights' loaded file, or None
    dataset: catalog.Dataset
    origin: str

    def parameters(self):
        """(tensors, statistics): the named tensors ({name: array} per layer with parameters) and
        running statistics of the file, else of the spec's initializer (seeded)."""
        if self.loaded is not None:
            return self.loaded.tensors, self.loaded.statistics
        model = Network(self.spec)
        return model.tensors, model.statistics


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The source flags (mutually exclusive) and the spec flags, in two groups, the same in every
    command."""
    source = parser.add_argument_group("model (at most one; default: the catalog's "
                                       f"{DEFAULT_MODEL}, `backprop-parity models` lists them)")
    exclusive = source.add_mutually_exclusive_group()
    exclusive.add_argument("--model", type=model_name, metavar="NAME",
                           help="a catalog model: its spec, parameters from its initializer")
    exclusive.add_argument("--spec", metavar="FILE.json",
                           help="a ModelSpec JSON file: its spec, parameters from its initializer")
    exclusive.add_argument("--weights", metavar="FILE",
                           help="a shared weight file (.safetensors): its spec and parameters")
    spec = parser.add_argument_group("spec flags (each overrides one field of the model's spec)")
    spec.add_argument("--layers", type=_layer_sizes, metavar="N0,N1,...",
                      help="layer sizes of a dense stack, input first, e.g. 2,4,1")
    spec.add_argument("--hidden", choices=HIDDEN_ACTIVATIONS, help="hidden activation (dense stack)")
    spec.add_argument("--output", choices=OUTPUT_ACTIVATIONS, help="output activation (dense stack)")
    spec.add_argument("--loss", choices=LOSSES,
                      help="loss (the output activation follows it where the model's does not fit)")
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
    spec.add_argument("--weight-decay", type=float, metavar="LAMBDA",
                      help="weight decay on every trainable tensor (0: none); its form is --decay-form")
    spec.add_argument("--decay-form", choices=DECAY_FORMS,
                      help="coupled: g + lambda*theta (torch's weight_decay=); decoupled: theta shrinks by "
                           "lr*lambda*theta beside the update (AdamW, Keras's weight_decay=); default: the "
                           "spec's, else the convention's own")
    spec.add_argument("--batch-size", type=_batch_size, metavar="N|full",
                      help="samples per training step, or 'full' for full batch")
    spec.add_argument("--epochs", type=int, metavar="N", help="passes over the training data")
    spec.add_argument("--seed", type=non_negative_int, metavar="N",
                      help="initialization, shuffling and dropout seed (and the drawn batch's)")
    spec.add_argument("--dtype", choices=DTYPES)
    spec.add_argument("--l2", type=float, metavar="LAMBDA", help="L2 penalty (lambda/2)*sum ||W||^2")
    spec.add_argument("--dropout", type=float, metavar="P",
                      help="drop probability on hidden layers (dense stack)")


def given_flags(args: argparse.Namespace) -> list[str]:
    """The argparse dests of the spec flags given on the command line, in :data:`SPEC_FLAGS` order."""
    return [dest for dest in (*SPEC_FLAGS, *OPTIMIZER_FLAGS) if getattr(args, dest, None) is not None]


def resolve(args: argparse.Namespace, dataset: str | None = None) -> ModelSource:
    """The model of ``args``: its source (or the default), the spec flags on top, and its dataset's
    facts. ``dataset`` (``train --dataset``) picks that dataset's default model when no source is
    given, and must be the ``--model``'s dataset when one is."""
    given = given_flags(args)
    loaded = None
    if getattr(args, "weights", None) is not None:
        fixed = [f"--{dest}" for dest in given if dest in MODEL_FLAGS]
        if fixed:
            raise SpecError(f"--weights {args.weights} fixes the model; drop {', '.join(fixed)} (the "
                            "training flags --optimizer, --convention, --lr, --momentum, --weight-decay, "
                            "--decay-form, --batch-size, --epochs, --seed apply)")
        loaded = load_weights(args.weights)
        base, origin = loaded.spec, f"--weights {args.weights}"
    elif getattr(args, "spec", None) is not None:
        base, origin = read_spec_file(args.spec), f"--spec {args.spec}"
    elif getattr(args, "model", None) is not None:
        base, origin = catalog.spec(args.model), f"--model {args.model}"
    else:
        name = catalog.dataset(dataset).default_model if dataset is not None else DEFAULT_MODEL
        base, origin = catalog.spec(name), f"the default model {name}"
    facts = dataset_facts(args, base, dataset)
    return ModelSource(apply_flags(base, args, origin), loaded, facts, origin)


def dataset_facts(args: argparse.Namespace, base: ModelSpec, dataset: str | None) -> catalog.Dataset:
    """The dataset the model belongs to: ``dataset`` if given (a ``--model`` must train on it),
    else the ``--model``'s, else MNIST's where the input has 784 numbers, else None's stand-in:
    the default dataset's facts."""
    model = getattr(args, "model", None)
    if model is not None:
        trains_on = catalog.get_model(model).dataset
        if dataset not in (None, trains_on):
            raise UsageError(f"--model {model} trains on {trains_on}, not --dataset {dataset}")
        return catalog.dataset(trains_on)
    if dataset is not None:
        return catalog.dataset(dataset)
    for facts in catalog.DATASET_FACTS.values():
        if facts.features == math.prod(base.input_shape):
            return facts
    return catalog.dataset(catalog.DEFAULT_DATASET)


def source_name(args: argparse.Namespace) -> str:
    """The model's name in the report and the bench files: the catalog name (``--model``, or the
    default), else the stem of the ``--spec`` or ``--weights`` file (characters other than letters,
    digits, ``.``, ``_``, ``-`` become ``-``: it names the plot files), with ``-file`` added where it
    is a catalog name or empty."""
    path = args.spec if getattr(args, "spec", None) is not None else getattr(args, "weights", None)
    if path is None:
        return args.model if getattr(args, "model", None) is not None else DEFAULT_MODEL
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", Path(path).stem)
    return f"{stem}-file" if stem in catalog.MODELS or not stem.strip(".-") else stem


def apply_flags(base: ModelSpec, args: argparse.Namespace, origin: str) -> ModelSpec:
    """``base`` with every given spec flag applied (see the module docstring)."""
    given = given_flags(args)
    refuse_mlp_flags(base, given, origin)
    changes = {SPEC_FLAGS[dest]: getattr(args, dest) for dest in given if dest in SPEC_FLAGS}
    if changes.get("batch_size") == FULL_BATCH:
        changes["batch_size"] = None
    loss = changes.get("loss")
    if loss and "output_activation" not in changes and base.is_mlp and \
            base.output_activation not in LOSS_OUTPUTS[loss]:
        changes["output_activation"] = LOSS_OUTPUTS[loss][0]
    if any(dest in OPTIMIZER_FLAGS for dest in given):
        changes["optimizer"] = optimizer_spec(base.optimizer, args.optimizer, args.convention, args.lr,
                                              args.momentum, args.weight_decay, args.decay_form)
    return base.replace(**changes) if changes else base


def refuse_mlp_flags(base: ModelSpec, given: list[str], source: str) -> None:
    """Raise SpecError when ``base`` (from ``source``, e.g. ``--model lenet5``) is not a stack of
    dense layers and a flag of the MLP shorthand (``--layers``, ``--hidden``, ``--output``,
    ``--dropout``: ``given`` holds argparse dests) would rewrite it."""
    flags = [f"--{dest}" for dest in given if SPEC_FLAGS.get(dest) in SHORTHAND]
    if base.is_mlp or not flags:
        return
    kinds = ", ".join(dict.fromkeys(layer.kind for layer in base.layers))
    describe = "these flags describe" if len(flags) > 1 else "this flag describes"
    raise SpecError(f"{', '.join(flags)}: {describe} a stack of dense layers (the MLP shorthand), "
                    f"but {source} is a {kinds} stack; to "
                    f"change its layers, write its inputs and layers into a ModelSpec JSON file and pass it "
                    f"with --spec (drop {', '.join(flags)})")


def optimizer_spec(base: OptimizerSpec, name=None, convention=None, learning_rate=None, momentum=None,
                   weight_decay=None, decay_form=None):
    """``base`` with the optimizer flags applied (None = not given).

    Same name and convention: ``base`` with the new learning rate and momentum. A new name or
    convention: that framework's defaults, keeping ``base``'s learning rate and momentum when
    only the convention changes; explicit flags win in every case. Weight decay carries over in
    every case; a decay given to a spec without one takes the convention's own form
    (:data:`OWN_DECAY_FORM`) unless ``decay_form`` says otherwise.
    """
    decayed = _decay(base, convention or base.convention, weight_decay, decay_form)
    return dataclasses.replace(_optimizer_spec(base, name, convention, learning_rate, momentum), **decayed)


def _decay(base: OptimizerSpec, convention: str, weight_decay, decay_form) -> dict:
    decay = base.weight_decay if weight_decay is None else weight_decay
    if decay_form == "decoupled" and not decay:
        raise SpecError("--decay-form decoupled: the spec decays nothing; give --weight-decay LAMBDA > 0")
    if decay_form is None:
        decay_form = ("decoupled" if base.decoupled_decay else "coupled") if base.weight_decay \
            else OWN_DECAY_FORM[convention]
    return {"weight_decay": decay, "decoupled_decay": bool(decay) and decay_form == "decoupled"}


def _optimizer_spec(base: OptimizerSpec, name, convention, learning_rate, momentum) -> OptimizerSpec:
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


def source_arguments(args: argparse.Namespace) -> list[str]:
    """The source and spec flags of ``args`` as command-line words, to print a command that repeats
    the run (``check``'s reproduce line)."""
    words = []
    for flag in ("weights", "spec", "model"):
        if getattr(args, flag, None) is not None:
            words += [f"--{flag}", str(getattr(args, flag))]
    for dest in given_flags(args):
        value = getattr(args, dest)
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        words += [f"--{dest.replace('_', '-')}", text]
    return words


def read_spec_file(path) -> ModelSpec:
    """The ModelSpec in the JSON file at ``path``; every problem is one SpecError naming it."""
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
