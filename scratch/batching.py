"""The training plan: which samples each step sees and which hidden units it drops.

Both are pure functions of (spec.seed, epoch or step), so any backend can be handed exactly the
same batches in the same order and the same dropout masks.

* Sample order of epoch e: ``default_rng([seed, 1, e]).permutation(n)`` when ``spec.shuffle``
  and the batch is smaller than the data; natural order otherwise (a full batch's gradient does
  not depend on the order, so it is never permuted).
* Batches: consecutive slices of that order of ``batch_size`` samples; the last, partial batch is
  kept, so an epoch has ⌈n / batch_size⌉ steps (a plan whose batch of one row would reach a
  BatchNorm that then sees one value per channel is refused: :func:`check_batch_statistics`).
* Dropout mask of global step t (0-based) for hidden layer l with a dropout layer of rate p_l:
  with ``rng = default_rng([seed, 2, t])`` and those layers drawn in order,
  D_l = (U ≥ p_l) / (1 − p_l) with U ~ U[0, 1) of shape (batch, n_l), in the spec's dtype
  (inverted dropout: E[D_l] = 1). A hidden layer without dropout gets ``None``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from scratch.errors import DataError
from scratch.layers.normalization import ONE_VALUE
from scratch.spec import ModelSpec

ORDER_STREAM = 1
DROPOUT_STREAM = 2


@dataclass(frozen=True)
class Step:
    """One optimizer step: ``indices`` (None = all samples in order) and the dropout masks."""

    epoch: int
    step: int
    indices: np.ndarray | None
    masks: list[np.ndarray] | None
    last_in_epoch: bool


def epoch_order(seed: int, epoch: int, n_samples: int) -> np.ndarray:
    """The permutation of range(n_samples) used in ``epoch``."""
    return np.random.default_rng([seed, ORDER_STREAM, epoch]).permutation(n_samples)


def dropout_masks(spec: ModelSpec, step: int, batch: int) -> list[np.ndarray | None] | None:
    """Scaled masks D_l (batch, *shape of A_l) for every hidden layer at global ``step``
    (``None`` for a layer without dropout); ``None`` if no layer drops."""
    rates = spec.dropout_rates
    if not any(rates):
        return None
    rng = np.random.default_rng([spec.seed, DROPOUT_STREAM, step])
    dtype = np.dtype(spec.dtype)
    return [None if rate == 0.0 else
            np.where(rng.random((batch, *shape)) >= rate, dtype.type(1.0 / (1.0 - rate)), dtype.type(0.0))
            for rate, shape in zip(rates, spec.layer_shapes[1:-1], strict=True)]


def map_masks(masks: list[np.ndarray | None] | None, function) -> list[np.ndarray | None] | None:
    """``function`` applied to every mask of a step (rows of a block, a cast), keeping the
    ``None`` of a layer without dropout and of a plan without any."""
    return None if masks is None else [None if mask is None else function(mask) for mask in masks]


def steps_per_epoch(spec: ModelSpec, n_samples: int) -> int:
    batch = n_samples if spec.batch_size is None else min(spec.batch_size, n_samples)
    return -(-n_samples // batch)


def check_batch_statistics(spec: ModelSpec, n_samples: int, name: str = "training data") -> None:
    """Raise :class:`DataError` if a step of the plan over ``n_samples`` samples would feed a
    BatchNorm one value per channel (``ModelSpec.one_value_norms``): a batch of one row — the
    whole data set of one row, or the last, partial batch of an epoch when ``n_samples`` mod
    ``batch_size`` is 1. Such a step is refused rather than dropped or merged (torch's DataLoader
    would need ``drop_last``), so every sample is still seen once per epoch; the message names
    the fix."""
    if not spec.one_value_norms or n_samples < 1:
        return
    norm = spec.one_value_norms[0]
    batch = n_samples if spec.batch_size is None else min(spec.batch_size, n_samples)
    if batch == 1:
        raise DataError(f"{name}: 1 row, but {norm} sees one value per channel in a batch of one row "
                        f"and BatchNorm cannot train on that ({ONE_VALUE}); give at least 2 rows")
    if n_samples % batch == 1:
        raise DataError(f"{name}: {n_samples} rows in batches of {batch} leave a last batch of 1 row, but "
                        f"{norm} sees one value per channel in it and BatchNorm cannot train on that "
                        f"({ONE_VALUE}); use {n_samples - 1} or {n_samples + 1} rows, or a batch_size "
                        f"that does not leave 1 row over (e.g. {_fitting_batch(n_samples, batch)})")


def _fitting_batch(n_samples: int, batch: int) -> int:
    """The batch size nearest ``batch`` (smaller first) whose last batch is not 1 row."""
    for offset in range(1, n_samples):
        for candidate in (batch - offset, batch + offset):
            if 2 <= candidate <= n_samples and n_samples % candidate != 1:
                return candidate
    return n_samples


def training_plan(spec: ModelSpec, n_samples: int) -> Iterator[Step]:
    """Every step of ``spec.epochs`` epochs over ``n_samples`` samples, in order."""
    batch = n_samples if spec.batch_size is None else min(spec.batch_size, n_samples)
    full_batch = batch == n_samples
    step = 0
    for epoch in range(spec.epochs):
        if full_batch:
            order = None
        elif spec.shuffle:
            order = epoch_order(spec.seed, epoch, n_samples)
        else:
            order = np.arange(n_samples)
        for start in range(0, n_samples, batch):
            indices = None if order is None else order[start:start + batch]
            size = n_samples if indices is None else len(indices)
            last = start + batch >= n_samples
            yield Step(epoch, step, indices, dropout_masks(spec, step, size), last)
            step += 1


def batches(x: np.ndarray, targets: np.ndarray, plan) -> Iterator[tuple[Step, np.ndarray, np.ndarray]]:
    """(step, x_batch, targets_batch) for every step of ``plan``; a full batch is not copied."""
    for step in plan:
        if step.indices is None:
            yield step, x, targets
        else:
            yield step, x[step.indices], targets[step.indices]
