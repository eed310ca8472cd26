"""Training processes a batch in row blocks (``scratch.model.BLOCK_ROWS``); the blocked loss and
gradients must equal one forward and backward pass over the whole batch, to the tolerance table.

The batches here span three blocks, the last one partial, so the 1/m of the mean, the |B|/m
weights of the block losses, the single L2 term and the dropout-mask slicing are all exercised.
"""

from __future__ import annotations

import numpy as np
import pytest

from judge.parity import compare_traces
from scratch.batching import dropout_masks
from scratch.model import BLOCK_ROWS, MLP
from scratch.optimizers import make_optimizer
from scratch.spec import LOSS_OUTPUTS, ModelSpec, OptimizerSpec
from scratch.variants import ScalarBiasMLP

PAIRS = [(out, loss) for loss, outs in LOSS_OUTPUTS.items() for out in outs]
ROWS = 2 * BLOCK_ROWS + 37


def batch(model: MLP, rng) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((ROWS, model.spec.layer_sizes[0])).astype(model.dtype)
    return x, model.targets(rng.integers(0, model.spec.layer_sizes[-1], ROWS))


def whole_batch_trace(model: MLP, x, targets, masks=None) -> dict:
    forward = model.forward(x, masks)
    grads = model.backward(forward, targets)
    return {"loss": np.asarray(model.loss(forward, targets)), **forward.named(), **grads.named()}


def blocked_trace(model: MLP, x, targets, masks=None) -> dict:
    loss, gradients = model.gradients(x, targets, masks)
    names = [name for names in model.spec.gradient_names for name in names]
    return {"loss": np.asarray(loss), **dict(zip(names, gradients, strict=True))}


def assert_same(model: MLP, x, blocked: dict, whole: dict) -> None:
    results = [r for r in compare_traces(blocked, whole, model.spec.dtype, x=x) if r.name in blocked]
    assert len(results) == len(blocked)
    failures = [r.describe() for r in results if not r.ok]
    assert not failures, failures


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("out, loss", [pytest.param(o, lo, id=f"{lo}+{o}") for o, lo in PAIRS])
def test_blocked_gradients_equal_whole_batch(out, loss, dtype, rng):
    n_out = 1 if out == "sigmoid" else 3
    spec = ModelSpec((5, 7, 6, n_out), hidden_activation="tanh", output_activation=out, loss=loss,
                     dtype=dtype, l2=0.01, seed=int(rng.integers(1000)))
    model = MLP(spec)
    x, targets = batch(model, rng)
    assert_same(model, x, blocked_trace(model, x, targets), whole_batch_trace(model, x, targets))


def test_blocked_gradients_slice_the_dropout_masks(rng):
    spec = ModelSpec((5, 7, 6, 3), hidden_activation="relu", dropout=0.3, seed=int(rng.integers(1000)))
    model = MLP(spec)
    x, targets = batch(model, rng)
    masks = dropout_masks(spec, step=0, batch=ROWS)
    blocked, whole = blocked_trace(model, x, targets, masks), whole_batch_trace(model, x, targets, masks)
    assert_same(model, x, blocked, whole)


def test_seed_variant_keeps_its_bias_rule_in_blocks(rng):
    """Seed 001's scalar bias gradient, summed block by block, is still the sum over all of dZ_l."""
    model = ScalarBiasMLP(ModelSpec((5, 7, 3), seed=int(rng.integers(1000))))
    x, targets = batch(model, rng)
    blocked, whole = blocked_trace(model, x, targets), whole_batch_trace(model, x, targets)
    assert_same(model, x, blocked, whole)
    assert np.ptp(blocked["db1"]) == 0.0          # every unit gets the same (wrong) value


def test_one_block_is_exactly_forward_then_backward(rng):
    model = MLP(ModelSpec((5, 7, 3), l2=0.01, seed=int(rng.integers(1000))))
    x, targets = batch(model, rng)
    x, targets = x[:BLOCK_ROWS], targets[:BLOCK_ROWS]
    blocked, whole = blocked_trace(model, x, targets), whole_batch_trace(model, x, targets)
    for name, value in blocked.items():
        np.testing.assert_array_equal(value, whole[name], err_msg=name)


def test_train_step_refuses_targets_of_another_length(rng):
    model = MLP(ModelSpec((5, 7, 3)))
    x, targets = batch(model, rng)
    optimizer = make_optimizer(OptimizerSpec("sgd", learning_rate=0.1))
    with pytest.raises(ValueError, match=f"targets: expected {ROWS} rows"):
        model.train_step(x, targets[:-1], optimizer)
