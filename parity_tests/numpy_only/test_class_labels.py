"""The one labelling rule (``scratch.model.class_labels``) and its users.

Several output units: the argmax (ties to the first unit). One unit: the threshold at 0.5, the
midpoint of the 0/1 targets (exactly 0.5 is class 0). The engine's ``predict`` and ``evaluate``
and a twin's ``train --backend`` evaluation (``reports.cli.backend_training.evaluate``) all label
with it, so a twin's accuracy is the engine's whenever their outputs agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from reports.cli.backend_training import evaluate
from scratch.model import Network, class_labels
from scratch.spec import ModelSpec
from twins.scratch_backend import ScratchBackend


def test_several_units_take_the_argmax_ties_to_the_first():
    output = np.array([[0.1, 0.7, 0.2], [0.4, 0.4, 0.2], [0.0, 0.0, 1.0], [-3.0, -1.0, -2.0]])
    np.testing.assert_array_equal(class_labels(output), [1, 0, 2, 1])


def test_one_unit_is_thresholded_at_one_half():
    half = 0.5
    output = np.array([[0.2], [half], [np.nextafter(half, 1.0)], [np.nextafter(half, 0.0)], [0.9]])
    got = class_labels(output)
    np.testing.assert_array_equal(got, [0, 0, 1, 0, 1])
    assert got.dtype.kind == "i"


@pytest.mark.parametrize("n_out", [1, 2, 5])
def test_targets_label_back_to_their_labels(n_out):
    spec = ModelSpec((3, n_out), output_activation="sigmoid" if n_out == 1 else "softmax",
                     loss="bce" if n_out == 1 else "cce")
    labels = np.random.default_rng(n_out).integers(0, max(n_out, 2), 40)
    np.testing.assert_array_equal(class_labels(Network(spec).targets(labels)), labels)


@pytest.mark.parametrize("sizes, output, loss", [((4, 6, 1), "sigmoid", "bce"),
                                                 ((4, 6, 3), "softmax", "cce")])
def test_a_twins_evaluation_labels_as_the_engine_does(sizes, output, loss):
    """``evaluate`` of the engine behind the backend interface gives the engine's own (loss,
    accuracy), on an output whose accuracy is neither 0 nor 1."""
    spec = ModelSpec(sizes, hidden_activation="tanh", output_activation=output, loss=loss,
                     init="glorot_uniform", seed=4)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, sizes[0]))
    y = rng.integers(0, max(sizes[-1], 2), 50)
    engine = Network(spec)
    want = engine.evaluate(x, y)
    assert 0.0 < want[1] < 1.0
    assert evaluate(ScratchBackend(spec, tensors=engine.tensors), engine, x, y) == want
