"""What every scenario of the report shares: the run context (backends, data, progress bars)
and a few measurements (accuracy from a backend's own forward pass, parameter distances).

Scenario functions return plain JSON-able dicts: floats (non-finite values become ``None``,
JSON has no NaN), ints, strings, bools, lists and dicts.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from scratch import catalog
from scratch.batching import Step, batches
from scratch.model import Network, class_labels
from scratch.spec import ModelSpec
from twins.backends import BACKENDS, available_backends, make_backend

# The seeds' net (seed 002's), which the conventions and variants scenarios keep.
SEED_MODEL = "seed-002"
SEED_NET = catalog.spec(SEED_MODEL).layer_sizes


def number(value) -> float | None:
    """A float for JSON: ``None`` for NaN and ±inf."""
    value = float(value)
    return value if math.isfinite(value) else None


def numbers(values: Iterable) -> list[float | None]:
    return [number(v) for v in values]


@dataclass
class Context:
    """Where a report run takes its data and backends from, and whether it shows progress.

    ``backends`` are the installed ones (in :data:`twins.backends.BACKENDS` order);
    ``skipped`` says why each other one is left out.
    """

    data_dir: str | None = None
    progress: bool = False
    backends: list[str] = field(default_factory=available_backends)
    skipped: dict[str, str] = field(default_factory=dict)
    _mnist: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name, (_, _, needs) in BACKENDS.items():
            if name not in self.backends and name not in self.skipped:
                self.skipped[name] = f"not installed (needs the {needs!r} package)"

    def has(self, *names: str) -> bool:
        return all(name in self.backends for name in names)

    def mnist(self, dtype: str):
        """The MNIST splits in ``dtype`` (each dtype loaded once; scaled x / 255 in that dtype)."""
        if dtype not in self._mnist:
            from scratch.datasets import load_mnist

            self._mnist[dtype] = load_mnist(self.data_dir, dtype=np.dtype(dtype))
        return self._mnist[dtype]

    def training_data(self, spec: ModelSpec, dataset: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, labels): the first ``n`` training samples of ``dataset`` in ``spec``'s dtype, each
        sample in the spec's input shape (MNIST's 784 pixels as 1×28×28 maps for a convolutional
        spec; row-major, as ``train`` reshapes them)."""
        if dataset == "mnist":
            data = self.mnist(spec.dtype)
            x, labels = data.x_train[:n], data.y_train[:n]
        else:
            from reports.cli.train import load_dataset

            data = load_dataset(dataset, spec.dtype, limit=n)
            x, labels = data.x_train, data.y_train
        return x.reshape(len(x), *spec.input_shape), labels

    def bar(self, total: int, desc: str):
        """A tqdm bar on stderr (a disabled one when progress is off)."""
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, leave=False,
                    dynamic_ncols=True, mininterval=0.2, disable=not self.progress)


@dataclass(frozen=True)
class ScenarioModel:
    """The model a model scenario (parity, curves, divergence, explain) runs: a catalog entry, or
    the model ``report --spec``/``--weights`` resolved (:mod:`reports.cli.model_source`), with the
    name results.json and the verdict give it, the data set it runs on and, from a weight file, its
    parameters (None: the spec's initializer and seed)."""

    name: str
    spec: ModelSpec
    dataset: str
    tensors: list | None = field(default=None, compare=False, repr=False)

    def spec_with(self, **changes) -> ModelSpec:
        """The spec with ``changes`` (e.g. another dtype, optimizer or batch)."""
        return self.spec.replace(**changes) if changes else self.spec

    def start(self, spec: ModelSpec) -> Network:
        """The engine at the model's parameters in ``spec`` (its dtype): the weight file's, rounded
        to that dtype, else the spec's initializer and seed (:func:`start`)."""
        if self.tensors is None:
            return start(spec)
        rounded = [{name: np.asarray(value, dtype=spec.dtype) for name, value in layer.items()}
                   for layer in self.tensors]
        return Network(spec, tensors=rounded)


def scenario_model(model: str | ScenarioModel) -> ScenarioModel:
    """``model`` as a :class:`ScenarioModel`: a catalog name becomes its entry (spec, data set)."""
    if isinstance(model, ScenarioModel):
        return model
    return ScenarioModel(model, catalog.spec(model), catalog.get_model(model).dataset)


DATA_NAMES = {"mnist": "MNIST", "xor": "XOR", "spirals": "two spirals"}


def describe_data(dataset: str, x: np.ndarray) -> str:
    """``MNIST, first 16 training samples``."""
    return f"{DATA_NAMES.get(dataset, dataset)}, first {len(x)} training samples"


def start(spec: ModelSpec) -> Network:
    """The engine at the spec's initial parameters (its initializer and seed): the start every
    backend of a scenario copies."""
    return Network(spec)


def backend(name: str, spec: ModelSpec, tensors):
    """A fresh backend ``name`` holding copies of the named ``tensors`` (``Network.tensors``:
    {name: canonical array} per layer with parameters)."""
    return make_backend(name, spec, tensors=tensors)


def run_steps(model, x, targets, plan: Iterable[Step], bar=None,
              after_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Every step of ``plan`` on ``model`` (a backend); the loss of each step before its update.
    ``after_step(step, loss)`` runs after each update (e.g. to read the parameters)."""
    losses = []
    for step, x_batch, y_batch in batches(x, targets, plan):
        loss = model.train_step(x_batch, y_batch, step.masks)
        losses.append(float(loss))
        if after_step is not None:
            after_step(step.step, float(loss))
        if bar is not None:
            bar.update(1)
    return losses


def accuracy(model, x: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of a backend on (x, labels), from that backend's own forward pass (its trace)."""
    targets = Network(model.spec, tensors=model.tensors()).targets(labels)
    output = model.trace(x, targets)[f"A{model.spec.n_layers}"]
    return float(np.mean(class_labels(np.asarray(output)) == labels))


def flat_parameters(model) -> np.ndarray:
    """θ: every trainable tensor of a backend (W_l, b_l, a PReLU's α_l, …), layer by layer in
    declaration order, flattened into one float64 vector."""
    return np.concatenate([np.asarray(p, dtype=np.float64).ravel()
                           for layer in model.tensors() for p in layer.values()])


def relative_distance(theta: np.ndarray, reference: np.ndarray) -> float:
    """‖θ − θ_ref‖₂ / ‖θ_ref‖₂."""
    return float(np.linalg.norm(theta - reference) / np.linalg.norm(reference))


def spec_summary(spec: ModelSpec) -> dict:
    """The spec as a JSON-able dict (the same fields as the weight file stores)."""
    return spec.to_dict()
