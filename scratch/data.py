"""The data a model is fed by name: a dataset's splits (``train``) and one drawn batch (``check``,
``explain``), in the spec's dtype and input shape. The dataset facts (features, classes, how two
spirals are drawn) are the catalog's (:data:`scratch.catalog.DATASET_FACTS`). NumPy only.

The drawn batch: ``rows`` MNIST training samples drawn without replacement by
``numpy.random.default_rng(seed)`` when the model fits MNIST (784 inputs, 10 outputs or one for
two classes: the label's parity), N(0, 1) inputs (token ids uniform over the vocabulary, for a
stack that starts with an embedding) with random labels from the same generator otherwise;
reshaped to the spec's input shape (row-major: MNIST's 784 pixels are its 28 rows of 28, one
channel, or 28 time steps of 28 pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scratch import catalog, datasets
from scratch.errors import DataError, SpecError


@dataclass(frozen=True)
class Data:
    """A dataset's splits; ``x_test``/``y_test`` are None when it has no test split."""

    name: str
    x_train: object  # (n, features)
    y_train: object  # (n,) int64
    x_test: object | None
    y_test: object | None


def check_fits(spec, dataset: str) -> None:
    """Raise SpecError unless the first layer has the dataset's features and the last one its
    classes (or a single unit for two classes)."""
    facts = catalog.dataset(dataset)
    features, classes = facts.features, facts.classes
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
    facts = catalog.dataset(name)
    if name == "mnist":                              # only the rows kept are scaled (elementwise)
        pixels = datasets.read_mnist_pixels(data_dir)
        data = Data(name, datasets.scale_pixels(pixels.x_train[:limit], dtype), pixels.y_train[:limit].copy(),
                    datasets.scale_pixels(pixels.x_test, dtype), pixels.y_test.copy())
    elif name == "xor":
        x, y = datasets.xor(dtype)
        data = Data(name, x, y, None, None)
    elif name == "brackets":                         # integer token ids: no dtype
        s = facts.draw
        x, y = datasets.brackets(s["train_per_class"], length=s["length"], max_pairs=s["max_pairs"],
                                 seed=s["train_seed"])
        x_test, y_test = datasets.brackets(s["test_per_class"], length=s["length"], max_pairs=s["max_pairs"],
                                           seed=s["test_seed"])
        data = Data(name, x, y, x_test, y_test)
    else:                                            # spirals
        s = facts.draw
        x, y = datasets.two_spirals(s["train_per_class"], noise=s["noise"], seed=s["train_seed"],
                                    dtype=dtype)
        order = np.random.default_rng(s["order_seed"]).permutation(len(x))
        x_test, y_test = datasets.two_spirals(s["test_per_class"], noise=s["noise"],
                                              seed=s["test_seed"], dtype=dtype)
        data = Data(name, x[order], y[order], x_test, y_test)
    if limit is not None:
        data = Data(name, data.x_train[:limit], data.y_train[:limit], data.x_test, data.y_test)
    return data


def shaped(data: Data, spec) -> Data:
    """``data`` with each sample in the spec's input shape: the datasets hold flat rows (n,
    features); a spec on (C, H, W) maps gets them reshaped (row-major). :func:`check_fits` has
    checked that the sizes agree."""
    if len(spec.input_shape) == 1:
        return data

    def reshape(x):
        return None if x is None else x.reshape(len(x), *spec.input_shape)

    return Data(data.name, reshape(data.x_train), data.y_train, reshape(data.x_test), data.y_test)


def drawn_batch(spec, rows: int, seed: int, data_dir=None):
    """(x in the spec's input shape, labels): the batch of the module docstring."""
    n_in, n_out = math.prod(spec.input_shape), spec.layer_shapes[-1][0]
    rng = np.random.default_rng(seed)
    if n_in == 784 and n_out in (10, 1):
        pixels = datasets.read_mnist_pixels(data_dir)           # uint8; only the drawn rows are scaled
        if rows > len(pixels.x_train):
            raise DataError(f"--batch {rows}: MNIST has only {len(pixels.x_train)} training samples")
        chosen = rng.choice(len(pixels.x_train), size=rows, replace=False)
        labels = pixels.y_train[chosen]
        x = datasets.scale_pixels(pixels.x_train[chosen], spec.dtype)
        labels = labels % 2 if n_out == 1 else labels
    elif spec.token_inputs:                                      # token ids, uniform over the vocabulary
        x = rng.integers(0, spec.layers[0].vocabulary, (rows, n_in))
        labels = rng.integers(0, 2 if n_out == 1 else n_out, rows)
    else:
        x = rng.standard_normal((rows, n_in)).astype(spec.dtype)
        labels = rng.integers(0, 2 if n_out == 1 else n_out, rows)
    return x.reshape(len(x), *spec.input_shape), labels
