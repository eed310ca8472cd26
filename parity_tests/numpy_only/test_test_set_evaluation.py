"""Test-set figures come from the test data, and the data handling every backend shares.

Train/test evaluation, one-hot targets and MNIST scaling are the same code for every backend,
so no parity comparison can see them go wrong. Here the training and test sets are built so
that their answers differ — the test labels are the training labels shifted by one class, plus
extra rows — and every figure reported as "test" must equal an independent evaluation of the
final parameters on the test data (a forward pass written out below from the model's
definition: Z_l = A_{l−1}·W_lᵀ + b_l, tanh hidden, softmax output, mean cross-entropy).
"""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest

from reports.cli.train import Data, load_dataset, train
from scratch.datasets import blobs, load_mnist
from scratch.model import MLP
from scratch.spec import ModelSpec, OptimizerSpec


def independent_metrics(weights, biases, x, labels, hidden=np.tanh) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of a softmax MLP (tanh hidden unless told), in float64,
    written out here."""
    a = np.asarray(x, dtype=np.float64)
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True), start=1):
        z = a @ np.asarray(w, dtype=np.float64).T + np.asarray(b, dtype=np.float64)
        a = hidden(z) if layer < len(weights) else z
    shifted = a - a.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -float(np.mean(log_p[np.arange(len(labels)), labels]))
    return loss, float(np.mean(a.argmax(axis=1) == labels))


def split(seed: int, dtype: str = "float64"):
    """A training set and a test set whose answers differ: the test set is the first 20
    training rows with every label moved to the next class, and 7 rows of its own."""
    x, y = blobs(12, n_classes=3, n_features=4, spread=0.3, seed=seed, dtype=dtype)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    x_more, y_more = blobs(3, n_classes=3, n_features=4, spread=0.3, seed=seed + 1000, dtype=dtype)
    x_test = np.concatenate([x[:20], x_more[:7]])
    y_test = np.concatenate([(y[:20] + 1) % 3, y_more[:7]])
    return x, y, x_test, y_test


def spec(seed: int, dtype: str = "float64", epochs: int = 3) -> ModelSpec:
    return ModelSpec((4, 6, 3), hidden_activation="tanh", init="glorot_uniform", batch_size=8,
                     epochs=epochs, seed=seed, dtype=dtype,
                     optimizer=OptimizerSpec("momentum", learning_rate=0.2, momentum=0.5))


def assert_close(got, want, what):
    assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-15), f"{what}: {got!r} != {want!r}"


def test_fit_reports_test_figures_from_the_test_data(global_seed):
    x, y, x_test, y_test = split(global_seed)
    model = MLP(spec(global_seed))
    snapshots = []                              # parameters after each epoch's last step

    def on_step(step, loss):
        if (step + 1) % math.ceil(len(x) / 8) == 0:
            snapshots.append(([w.copy() for w in model.weights], [b.copy() for b in model.biases]))

    history = model.fit(x, y, x_test, y_test, on_step=on_step)
    assert history.epochs == [1, 2, 3] and len(snapshots) == 3
    for epoch, (weights, biases) in enumerate(snapshots):
        train_loss, train_accuracy = independent_metrics(weights, biases, x, y)
        test_loss, test_accuracy = independent_metrics(weights, biases, x_test, y_test)
        assert abs(test_loss - train_loss) > 1e-3          # the two sets do give different answers
        assert_close(history.train_loss[epoch], train_loss, f"epoch {epoch + 1} train loss")
        assert_close(history.test_loss[epoch], test_loss, f"epoch {epoch + 1} test loss")
        assert history.train_accuracy[epoch] == train_accuracy, f"epoch {epoch + 1} train accuracy"
        assert history.test_accuracy[epoch] == test_accuracy, f"epoch {epoch + 1} test accuracy"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cli_train_final_figures_come_from_the_test_split(dtype, global_seed):
    x, y, x_test, y_test = split(global_seed, dtype)
    result, model = train(spec(global_seed, dtype), Data("blobs", x, y, x_test, y_test))
    final = result.final
    assert (final["train_samples"], final["test_samples"]) == (len(x), len(x_test))
    test_loss, test_accuracy = independent_metrics(model.weights, model.biases, x_test, y_test)
    train_loss, train_accuracy = independent_metrics(model.weights, model.biases, x, y)
    rel = 1e-12 if dtype == "float64" else 1e-5
    assert math.isclose(final["test_loss"], test_loss, rel_tol=rel)
    assert math.isclose(final["train_loss"], train_loss, rel_tol=rel)
    assert not math.isclose(test_loss, train_loss, rel_tol=1e-3)
    assert final["test_accuracy"] == test_accuracy and final["train_accuracy"] == train_accuracy


def test_spirals_test_split_is_its_own_draw():
    """``load_dataset('spirals')``: a test split of its own (not the training rows), kept whole
    by --limit."""
    data = load_dataset("spirals", "float64", limit=50)
    assert data.x_train.shape == (50, 2) and data.x_test.shape == (200, 2)
    full = load_dataset("spirals", "float64")
    train_rows = {tuple(row) for row in full.x_train}
    assert not any(tuple(row) in train_rows for row in full.x_test)
    np.testing.assert_array_equal(data.x_test, full.x_test)
    np.testing.assert_array_equal(data.y_test, full.y_test)


def test_report_accuracy_reads_the_given_data(global_seed):
    """``reports.scenarios.common.accuracy`` of a backend on the shifted test set is that set's accuracy."""
    from reports.scenarios.common import accuracy, backend

    x, y, x_test, y_test = split(global_seed)
    model = MLP(spec(global_seed))
    model.fit(x, y)
    scratch = backend("scratch", model.spec, model.tensors)
    assert accuracy(scratch, x_test, y_test) == independent_metrics(model.weights, model.biases,
                                                                    x_test, y_test)[1]
    assert accuracy(scratch, x, y) == independent_metrics(model.weights, model.biases, x, y)[1]


def test_seed_scenario_measures_test_accuracy_on_the_test_split(global_seed):
    """The seeds scenario's per-backend run: ``test_accuracy`` from its experiment's test data."""
    from reports.scenarios.common import Context
    from reports.scenarios.seeds import Experiment, _train

    x, y, x_test, y_test = split(global_seed)
    run_spec = spec(global_seed)
    experiment = Experiment("shifted", lambda name: run_spec, x, y, x_test, y_test, "test", True)
    result = _train(Context(backends=["scratch"]), experiment, "scratch")
    model = MLP(run_spec)
    model.fit(x, y)                             # the same plan and initialization: the same weights
    test_accuracy = independent_metrics(model.weights, model.biases, x_test, y_test)[1]
    train_accuracy = independent_metrics(model.weights, model.biases, x, y)[1]
    assert test_accuracy != train_accuracy
    assert (result["test_accuracy"], result["train_accuracy"]) == (test_accuracy, train_accuracy)


def test_conventions_scenario_measures_accuracy_on_the_test_split(global_seed):
    """The conventions scenario's run: its accuracy is the trained model's on the test data."""
    from reports.scenarios.common import Context
    from reports.scenarios.conventions import ConventionSettings, _run

    x, y, x_test, y_test = split(global_seed)
    settings = ConventionSettings(samples=len(x), batch_size=8, epochs=2, layer_sizes=(4, 6, 3),
                                  init="glorot_uniform", seed=global_seed)
    optimizer = OptimizerSpec("momentum", learning_rate=0.2, momentum=0.5)
    *_, reported = _run(Context(backends=["scratch"]), settings, optimizer, x, y, x_test, y_test)
    model = MLP(ModelSpec((4, 6, 3), init="glorot_uniform", seed=global_seed, optimizer=optimizer,
                          batch_size=8, epochs=2))
    model.fit(x, y)
    relu = lambda z: np.maximum(z, 0.0)  # noqa: E731
    test_accuracy = independent_metrics(model.weights, model.biases, x_test, y_test, relu)[1]
    assert test_accuracy != independent_metrics(model.weights, model.biases, x, y, relu)[1]
    assert reported == test_accuracy


@pytest.mark.parametrize("n_out", [2, 3, 10])
def test_one_hot_targets_put_the_one_at_the_label(n_out):
    labels = np.arange(n_out)[::-1].copy()
    targets = MLP(ModelSpec((2, n_out))).targets(labels)
    expected = np.zeros((n_out, n_out))
    for row, label in enumerate(labels):
        expected[row, label] = 1.0
    np.testing.assert_array_equal(targets, expected)


def write_idx_ubyte(path, array: np.ndarray) -> None:
    """An IDX file written here from the format: 0, 0, 0x08 (unsigned byte), ndim, the sizes
    as big-endian int32, then the bytes; gzip-compressed."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mnist_both_splits_scaled_by_255(tmp_path, dtype, rng):
    """Each split, separately: x = pixels / 255 in the dtype, rows in file order, labels as
    written — with train and test pixels that differ."""
    pixels = {"train": rng.integers(0, 256, (5, 28, 28)), "test": rng.integers(0, 256, (3, 28, 28))}
    pixels["train"][0, 0, :2] = [0, 255]
    pixels["test"][0, 0, :2] = [255, 51]
    labels = {"train": rng.integers(0, 10, 5), "test": rng.integers(0, 10, 3)}
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    for part, (images_name, labels_name) in names.items():
        write_idx_ubyte(tmp_path / f"{images_name}.gz", pixels[part])
        write_idx_ubyte(tmp_path / f"{labels_name}.gz", labels[part])
    splits = load_mnist(tmp_path, dtype=np.dtype(dtype))
    for part in ("train", "test"):
        x = getattr(splits, f"x_{part}")
        expected = pixels[part].reshape(-1, 784).astype(dtype) / np.dtype(dtype).type(255)
        assert x.dtype == np.dtype(dtype), part
        np.testing.assert_array_equal(x, expected, err_msg=f"{part} split")
        np.testing.assert_array_equal(getattr(splits, f"y_{part}"), labels[part], err_msg=part)
    assert splits.x_test[0, 0] == 1.0 and splits.x_test[0, 1] == np.dtype(dtype).type(0.2)
