"""The training plan against its documented definition, rebuilt here from the docstring of
``scratch.batching`` alone (none of its helpers is called to build the expectation).

Every backend is handed the same plan, so a parity comparison cannot see a plan that is wrong
for all of them (batches not reshuffled per epoch, the partial batch dropped, masks drawn in
the wrong layer order or not rescaled). The definition:

* epoch e's order: ``default_rng([seed, 1, e]).permutation(n)`` when shuffling and the batch
  is smaller than the data, else natural order; a full batch is never permuted (indices None);
* batches: consecutive slices of ``batch_size`` of that order, the last partial one kept;
* global step t (0-based), hidden layer l (in layer order) from ``rng = default_rng([seed, 2, t])``:
  D_l = (U ≥ p) / (1 − p), U = rng.random((batch, n_l)), in the spec's dtype; no masks for p = 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scratch.batching import batches, training_plan
from scratch.layer_specs import Conv2DSpec, DenseSpec, DropoutSpec, FlattenSpec, MaxPool2DSpec
from scratch.spec import ModelSpec


def documented_plan(seed, n, batch_size, epochs, shuffle, dropout, hidden_widths, dtype):
    """[(epoch, step, indices or None, masks or None, last_in_epoch)] from the definition."""
    batch = n if batch_size is None or batch_size >= n else batch_size
    plan, t = [], 0
    for e in range(epochs):
        if batch == n:
            order = None
        elif shuffle:
            order = np.random.default_rng([seed, 1, e]).permutation(n)
        else:
            order = np.arange(n)
        n_steps = math.ceil(n / batch)
        for k in range(n_steps):
            indices = None if order is None else order[k * batch:min((k + 1) * batch, n)]
            rows = n if indices is None else len(indices)
            masks = None
            if dropout > 0:
                rng = np.random.default_rng([seed, 2, t])
                masks = []
                for width in hidden_widths:
                    u = rng.random((rows, width))
                    keep = u >= dropout
                    masks.append((keep / (1.0 - dropout)).astype(dtype))
            plan.append((e, t, indices, masks, k == n_steps - 1))
            t += 1
    return plan


SETTINGS = [
    # (n, batch_size, epochs, shuffle, dropout, layer sizes, dtype)
    (10, 4, 3, True, 0.3, (3, 5, 2, 4), "float64"),       # partial last batch (2 of 4)
    (12, 4, 2, True, 0.5, (3, 6, 7, 2), "float32"),       # exact batches
    (7, 3, 3, False, 0.25, (2, 4, 3), "float64"),         # no shuffle: natural order, partial batch
    (9, 1, 2, True, 0.1, (2, 3, 3, 3, 2), "float32"),     # batch 1, three equal-width hidden layers
    (11, None, 3, True, 0.4, (4, 5, 6, 3), "float64"),    # full batch: never permuted
    (11, 11, 2, True, 0.2, (4, 5, 3), "float32"),         # batch = n is a full batch
    (6, 50, 2, True, 0.6, (4, 5, 3), "float64"),          # batch > n is a full batch
    (13, 5, 3, True, 0.0, (2, 4, 2), "float64"),          # no dropout: no masks
]


@pytest.mark.parametrize("offset", [0, 1, 17])
@pytest.mark.parametrize("n,batch_size,epochs,shuffle,dropout,sizes,dtype", SETTINGS)
def test_plan_is_the_documented_one(n, batch_size, epochs, shuffle, dropout, sizes, dtype, offset,
                                    global_seed):
    seed = global_seed + offset
    spec = ModelSpec(sizes, batch_size=batch_size, epochs=epochs, shuffle=shuffle, dropout=dropout,
                     dtype=dtype, seed=seed)
    expected = documented_plan(seed, n, batch_size, epochs, shuffle, dropout, sizes[1:-1], np.dtype(dtype))
    plan = list(training_plan(spec, n))
    assert len(plan) == len(expected)
    for got, (epoch, step, indices, masks, last) in zip(plan, expected, strict=True):
        where = f"epoch {epoch}, step {step}"
        assert (got.epoch, got.step, got.last_in_epoch) == (epoch, step, last), where
        if indices is None:
            assert got.indices is None, where
        else:
            np.testing.assert_array_equal(got.indices, indices, err_msg=where)
        if masks is None:
            assert got.masks is None, where
            continue
        assert len(got.masks) == len(masks), where
        for layer, (got_mask, mask) in enumerate(zip(got.masks, masks, strict=True), start=1):
            assert got_mask.dtype == np.dtype(dtype), f"{where}, layer {layer}"
            assert got_mask.shape == mask.shape, f"{where}, layer {layer}"
            np.testing.assert_array_equal(got_mask, mask, err_msg=f"{where}, hidden layer {layer}")


def test_order_changes_between_epochs_and_seeds(global_seed):
    """Not one fixed permutation: two epochs (and two seeds) of 20 samples give different orders."""
    spec = ModelSpec((2, 3, 2), batch_size=5, epochs=2, seed=global_seed)
    plan = list(training_plan(spec, 20))
    first = np.concatenate([s.indices for s in plan if s.epoch == 0])
    second = np.concatenate([s.indices for s in plan if s.epoch == 1])
    other_seed = np.concatenate([s.indices for s in training_plan(spec.replace(seed=global_seed + 1), 20)
                                 if s.epoch == 0])
    assert sorted(first) == sorted(second) == list(range(20))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, other_seed)


def test_masks_differ_between_layers_and_steps(global_seed):
    """Two hidden layers of the same width get different masks, and so do two steps."""
    spec = ModelSpec((3, 16, 16, 2), batch_size=8, dropout=0.5, seed=global_seed)
    first, second = list(training_plan(spec, 16))
    assert not np.array_equal(first.masks[0], first.masks[1])
    assert not np.array_equal(first.masks[0], second.masks[0])
    assert set(np.unique(first.masks[0])) <= {0.0, 2.0}


def test_batches_slice_the_planned_rows(global_seed):
    """``batches`` hands out exactly rows ``indices`` of x and of the targets (all of them,
    uncopied, for a full batch)."""
    rng = np.random.default_rng(global_seed)
    x = rng.standard_normal((10, 3))
    targets = rng.standard_normal((10, 2))
    spec = ModelSpec((3, 4, 2), batch_size=4, epochs=2, seed=global_seed)
    seen = 0
    for step, xb, yb in batches(x, targets, training_plan(spec, 10)):
        np.testing.assert_array_equal(xb, x[step.indices])
        np.testing.assert_array_equal(yb, targets[step.indices])
        seen += len(xb)
    assert seen == 20
    full = list(batches(x, targets, training_plan(spec.replace(batch_size=None), 10)))
    assert all(xb is x and yb is targets for _, xb, yb in full)


# Stacks that mix hidden layers with and without dropout, written as the definition reads them:
# (inputs, [(hidden layer, the output shape of that layer worked out by hand, its dropout rate)],
# output layer). A layer without dropout draws nothing from the step's generator.
MIXED = {
    "without-before-with": ((4,), [(DenseSpec(5), (5,), 0.0), (DenseSpec(4), (4,), 0.3),
                                   (DenseSpec(6, "tanh"), (6,), 0.0), (DenseSpec(3), (3,), 0.5)]),
    "two-without-then-with-equal-widths": ((3,), [(DenseSpec(6), (6,), 0.0), (DenseSpec(6), (6,), 0.0),
                                                  (DenseSpec(6), (6,), 0.4)]),
    "with-then-without": ((3,), [(DenseSpec(4), (4,), 0.25), (DenseSpec(5), (5,), 0.0)]),
    "conv-with-then-dense-with": ((1, 6, 5), [(Conv2DSpec(2, (3, 2)), (2, 4, 4), 0.2),
                                              (MaxPool2DSpec(2), (2, 2, 2), 0.0),
                                              (FlattenSpec(), (8,), 0.0), (DenseSpec(5), (5,), 0.5)]),
}


def _mixed_spec(name, seed, dtype):
    inputs, hidden = MIXED[name]
    layers = []
    for layer, _, rate in hidden:
        layers += [layer] + ([DropoutSpec(rate)] if rate else [])
    return ModelSpec(inputs=inputs, layers=(*layers, DenseSpec(3, "softmax")), batch_size=4, epochs=2,
                     seed=seed, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", MIXED)
def test_masks_of_a_stack_mixing_layers_with_and_without_dropout(name, dtype, global_seed):
    """Per global step t, ``rng = default_rng([seed, 2, t])`` draws U of shape (batch, *A_l) for
    each hidden layer *with* dropout, in layer order; every other hidden layer gets None — so a
    layer without dropout before one with it neither shifts the stream nor takes its mask."""
    n = 10
    spec = _mixed_spec(name, global_seed, dtype)
    hidden = MIXED[name][1]
    plan = list(training_plan(spec, n))
    assert len(plan) == 2 * math.ceil(n / 4)
    for step in plan:
        rows = len(step.indices)
        rng = np.random.default_rng([global_seed, 2, step.step])
        expected = []
        for _, shape, rate in hidden:
            if rate == 0.0:
                expected.append(None)
                continue
            keep = rng.random((rows, *shape)) >= rate
            expected.append((keep / (1.0 - rate)).astype(dtype))
        assert step.masks is not None and len(step.masks) == len(hidden), f"step {step.step}"
        for layer, (got, want) in enumerate(zip(step.masks, expected, strict=True), start=1):
            where = f"step {step.step}, hidden layer {layer}"
            if want is None:
                assert got is None, where
            else:
                assert got is not None and got.dtype == np.dtype(dtype) and got.shape == want.shape, where
                np.testing.assert_array_equal(got, want, err_msg=where)
