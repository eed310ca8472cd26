"""Shared inputs for the parity tests: one seeded case per spec, every backend built from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from scratch.batching import dropout_masks
from scratch.initializers import initialize
from scratch.model import MLP, pair_tensors
from scratch.spec import ModelSpec
from twins.backends import BACKENDS, PAIRS, make_backend

FRAMEWORK_MODULE = {name: needs for name, (_, _, needs) in BACKENDS.items()}

# (actual, desired) as twins.backends defines them once; the frameworks in the same order.
FRAMEWORKS = [name for name in BACKENDS if name != "scratch"]
PAIR_IDS = [f"{a}-vs-{d}" for a, d in PAIRS]


def pair_params(pairs=PAIRS) -> list:
    """``pairs`` as pytest parameters, the frameworks against each other marked slow.

    For the large grids (every pairing, the seeds' nets, every optimizer's curve): a framework
    pair runs the same code of the same two twins as their pairs with the NumPy engine, and when
    both of those pass within the bound the pair is within twice it (triangle inequality), so in
    the default suite it would only repeat work; it runs with ``-m slow``, and the random
    architectures (and ``check``, the report) compare the frameworks with each other by default."""
    return [pytest.param(pair, id=f"{pair[0]}-vs-{pair[1]}",
                         marks=() if pair[1] == "scratch" else pytest.mark.slow) for pair in pairs]


@dataclass
class Case:
    spec: ModelSpec
    weights: list
    biases: list
    x: np.ndarray
    targets: np.ndarray
    labels: np.ndarray
    masks: list | None

    @property
    def tensors(self) -> list[dict]:
        """The case's parameters as named tensors ({"W": …, "b": …} per dense layer)."""
        return pair_tensors(self.spec, self.weights, self.biases)

    def backend(self, name: str):
        """A fresh backend ``name`` holding this case's parameters (skipped if not installed)."""
        pytest.importorskip(FRAMEWORK_MODULE[name])
        return make_backend(name, self.spec, tensors=self.tensors)


def make_case(spec: ModelSpec, n_samples: int, seed: int) -> Case:
    """Parameters from the spec's initializer, inputs ~ N(0, 1), labels uniform, and the
    step-0 dropout masks, all from ``seed``."""
    rng = np.random.default_rng(seed)
    weights, biases = initialize(spec.init, spec.layer_sizes, seed, np.dtype(spec.dtype))
    x = rng.standard_normal((n_samples, spec.layer_sizes[0])).astype(spec.dtype)
    n_out = spec.layer_sizes[-1]
    labels = rng.integers(0, 2 if n_out == 1 else n_out, n_samples)
    targets = MLP(spec, weights, biases).targets(labels)
    return Case(spec, weights, biases, x, targets, labels, dropout_masks(spec, 0, n_samples))
