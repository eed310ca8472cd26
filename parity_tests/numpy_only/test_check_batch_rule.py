"""The batch ``backprop-parity check`` feeds every backend, rebuilt from its documented rule
(``reports/cli/check.py``): ``--batch`` MNIST training samples drawn without replacement by
``numpy.random.default_rng(--seed)`` when the input layer has 784 units — in NumPy,
``Generator.choice(n, size=batch, replace=False)``; their labels (mod 2 for one output unit) —
and otherwise ``standard_normal((batch, n_in))`` inputs in the spec's dtype and labels
``integers(0, n_out)`` (0/1 for one output unit) from that same generator, drawn in that order.
The rows are reshaped row-major to the input shape. Every backend gets this batch, so parity
cannot see it wrong (a shifted seed, rows drawn with replacement, labels from another stream)."""

from __future__ import annotations

import numpy as np
import pytest

from reports.cli.main import main
from scratch.datasets import load_mnist
from scratch.errors import BackendError
from scratch.layer_specs import Conv2DSpec, DenseSpec, FlattenSpec, MaxPool2DSpec
from scratch.spec import ModelSpec
from twins.scratch_backend import ScratchBackend

_MNIST = {}


def mnist(data_dir=None, *, dtype=np.float64):
    """load_mnist, once per dtype in this module: the whole split scaled, then drawn from, where
    check scales only the rows it draws (``scratch.data.drawn_batch``), so the two must agree."""
    key = (data_dir, np.dtype(dtype).name)
    if key not in _MNIST:
        _MNIST[key] = load_mnist(data_dir, dtype=dtype)
    return _MNIST[key]


def fed_batch(monkeypatch, tmp_path, spec, argv) -> tuple[np.ndarray, np.ndarray]:
    """(x, targets) that ``check --spec`` hands the backends (scratch twice, as scratch and torch)."""
    import judge.parity as parity
    import judge.training_parity as training_parity

    fed = {}
    real = parity.compare_backend_traces

    def capture(actual, desired, desired_backend, x, masks, bounds=None, **judged):
        fed["x"] = x
        return real(actual, desired, desired_backend, x, masks, bounds, **judged)

    def training(actual, desired, spec, tensors, x, targets, plan, bounds=None, **factories):
        fed["targets"] = targets
        raise BackendError("not trained here")

    monkeypatch.setattr("twins.backends.available_backends", lambda: ["scratch", "torch"])
    monkeypatch.setattr("twins.backends.make_backend",
                        lambda name, spec, statistics=None, *, tensors: ScratchBackend(spec, tensors=tensors))
    monkeypatch.setattr("twins.hygiene.configure_frameworks", lambda threads=None: {})
    monkeypatch.setattr(parity, "compare_backend_traces", capture)
    monkeypatch.setattr(training_parity, "compare_training", training)
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json(), encoding="utf-8")
    assert main(["check", "--spec", str(path), "--backends", "scratch,torch", "--steps", "1", *argv]) == 0
    return fed["x"], fed["targets"]


def _labels(targets: np.ndarray) -> np.ndarray:
    return targets[:, 0].astype(int) if targets.shape[1] == 1 else targets.argmax(axis=1)


@pytest.mark.parametrize("sizes,dtype", [((5, 4, 3), "float64"), ((7, 3, 1), "float32"),
                                         ((6, 2), "float64")])
@pytest.mark.parametrize("seed", [0, 11])
def test_a_non_mnist_batch_is_standard_normal_with_random_labels(sizes, dtype, seed, monkeypatch, tmp_path):
    spec = ModelSpec(sizes, dtype=dtype, loss="bce" if sizes[-1] == 1 else "cce",
                     output_activation="sigmoid" if sizes[-1] == 1 else "softmax")
    x, targets = fed_batch(monkeypatch, tmp_path, spec, ["--batch", "9", "--seed", str(seed)])
    rng = np.random.default_rng(seed)
    want_x = rng.standard_normal((9, sizes[0])).astype(dtype)
    want_labels = rng.integers(0, 2 if sizes[-1] == 1 else sizes[-1], 9)
    assert x.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(_labels(targets), want_labels)


MNIST_SPECS = {
    "mlp": ModelSpec((784, 6, 10), dtype="float32"),
    "one output": ModelSpec((784, 4, 1), loss="bce", output_activation="sigmoid", dtype="float32"),
    "cnn": ModelSpec(inputs=(1, 28, 28), layers=(Conv2DSpec(2, 5, strides=3), MaxPool2DSpec(2),
                                                 FlattenSpec(), DenseSpec(10, "softmax")), dtype="float32"),
}


@pytest.mark.parametrize("name", MNIST_SPECS)
def test_an_mnist_batch_is_training_rows_drawn_without_replacement(name, monkeypatch, tmp_path):
    spec = MNIST_SPECS[name]
    x, targets = fed_batch(monkeypatch, tmp_path, spec, ["--batch", "40", "--seed", "3"])
    data = mnist(dtype=np.dtype(spec.dtype))
    rows = np.random.default_rng(3).choice(len(data.x_train), size=40, replace=False)
    assert len(set(rows.tolist())) == 40
    want_x = data.x_train[rows].reshape(40, *spec.input_shape)
    labels = data.y_train[rows] % 2 if spec.layer_shapes[-1] == (1,) else data.y_train[rows]
    assert x.shape == (40, *spec.input_shape) and x.dtype == np.dtype(spec.dtype)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(_labels(targets), labels)
