"""The benchmark's plain NumPy step (``reports.bench.plain_numpy``) computes what the engine
computes: from the same parameters, on the bench's own batch, the loss of each of 3 SGD steps and
the parameters after them agree with ``MLP.train_step`` within the tolerance table — so its row
in ``backprop-parity bench`` times the same work, and only the engine's overhead differs."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from judge.parity import compare_curves, compare_parameters
from reports.bench.grid import bench_batch, point_spec
from reports.bench.steps import available_kinds, kinds_for, make_step
from scratch import catalog
from scratch.errors import BackendError
from scratch.model import MLP
from scratch.optimizers import make_optimizer
from scratch.spec import ModelSpec, OptimizerSpec


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_plain_numpy_step_matches_the_engine(dtype, global_seed):
    default = catalog.spec(catalog.DEFAULT_MODEL)
    spec = dataclasses.replace(point_spec(default, 64, dtype, "sgd"), seed=global_seed)
    x, targets, tensors = bench_batch(spec, 64)                      # the bench's batch: 64 MNIST rows
    model = MLP(spec, tensors=tensors)
    step = make_step("plain-numpy", spec, model.tensors, x, targets)
    update = make_optimizer(spec.optimizer)
    plain_losses = [step() for _ in range(3)]
    engine_losses = [model.train_step(x, targets, update) for _ in range(3)]
    assert all(isinstance(loss, float) for loss in plain_losses)
    assert plain_losses[2] < plain_losses[0], "three SGD steps at lr 0.1 lower the loss"
    assert all(layer["W"].dtype == np.dtype(dtype) for layer in step.tensors()), "updated in its own dtype"

    curve = compare_curves(plain_losses, engine_losses, dtype)
    engine = SimpleNamespace(spec=spec, tensors=lambda: model.tensors)
    failed = [c.describe() for c in [curve, *compare_parameters(step, engine)] if not c.ok]
    assert not failed, f"plain numpy vs scratch, {dtype}, seed {global_seed}: {failed}"


def test_plain_numpy_step_copies_the_parameters_it_is_given():
    spec = ModelSpec((4, 3, 2), init="he_normal", optimizer=OptimizerSpec("sgd", learning_rate=0.5))
    model = MLP(spec)
    before = [w.copy() for w in model.weights]
    x = np.random.default_rng(0).standard_normal((5, 4))
    step = make_step("plain-numpy", spec, model.tensors, x, model.targets(np.arange(5) % 2))
    step()
    assert all(np.array_equal(w, b) for w, b in zip(model.weights, before, strict=True))
    assert not np.array_equal(step.tensors()[0]["W"], before[0])


@pytest.mark.parametrize("change", [dict(optimizer=OptimizerSpec.framework_default("adam", "torch")),
                                    dict(hidden_activation="tanh"), dict(l2=0.5), dict(dropout=0.25)],
                         ids=["adam", "tanh", "l2", "dropout"])
def test_plain_numpy_step_refuses_what_it_does_not_implement(change):
    spec = ModelSpec((4, 3, 2), **change)
    model = MLP(spec)
    with pytest.raises(BackendError, match="plain-numpy bench step is written for ReLU/softmax"):
        make_step("plain-numpy", spec, model.tensors, np.zeros((2, 4)),
                  model.targets(np.array([0, 1])))


def test_the_grid_times_the_plain_step_for_sgd_only():
    kinds = available_kinds()
    assert "plain-numpy" in kinds
    default = catalog.spec(catalog.DEFAULT_MODEL)
    assert "plain-numpy" in kinds_for(kinds, point_spec(default, 64, "float64", "sgd"))
    assert "plain-numpy" not in kinds_for(kinds, point_spec(default, 64, "float64", "adam"))
    assert "scratch" in kinds_for(kinds, point_spec(default, 64, "float64", "adam"))
    assert "plain-numpy" not in kinds_for(kinds, catalog.spec("lenet5")), "a dense stack only"
