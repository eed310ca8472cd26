"""Random small conv nets (``conv_strategies.conv_stacks``: channels, kernel sizes, strides, dilation,
padding, pooling, BatchNorm, dropout, either Flatten order) through every twin against the
engine: forward and every gradient in float64 and float32, then training — every step
re-synchronized and the free-running curves (``judge.training_parity``).

A drawn BatchNorm carries the spec's default running variance (unbiased, torch's), and a drawn
conv may dilate at stride 2, both of which the Keras twin refuses (``keras.layers.Conv2D`` itself
refuses strides > 1 with dilation > 1): that refusal is asserted and the twin skipped for the draw;
a conv dilated at stride 1 runs through every twin. Training runs
plain SGD (under Adam a bias feeding a BatchNorm is pure rounding residue, see
``test_conv_parity.py``). The default suite draws one net (``--seed`` varies it); ``-m slow``
draws 12 more.
"""

from __future__ import annotations

import numpy as np
import pytest
from conv_strategies import conv_stacks
from hypothesis import HealthCheck, given, settings

from judge.parity import check_parity
from judge.training_parity import compare_training
from scratch.batching import dropout_masks, training_plan
from scratch.errors import BackendError
from scratch.model import Network
from scratch.spec import OptimizerSpec
from twins.backends import make_backend

TWINS = ("torch", "keras", "jax")
SAMPLES, BATCH = 8, 4
LEAKY_RELU_SLOPE = 2.0 ** -5     # exact in float32, which Keras's LeakyRelu requires (it refuses 0.01)


def twin_or_refusal(twin, spec, model):
    """The twin, or None where it refuses the spec for a reason it may (asserted)."""
    try:
        return make_backend(twin, spec, model.weights, model.biases)
    except BackendError as error:
        strided_dilated = any(layer.kind == "conv2d" and layer.strides > 1 and layer.dilation > 1
                              for layer in spec.layers)
        reason = "running variance" if "running variance" in str(error) else "with dilation"
        assert twin == "keras" and reason in str(error), error
        assert reason == "running variance" or strided_dilated, error
        return None


def check_net(spec, train: bool) -> None:
    rng = np.random.default_rng(spec.seed)
    for dtype in ("float64", "float32"):
        typed = spec.replace(dtype=dtype, optimizer=OptimizerSpec("sgd", learning_rate=0.1), batch_size=BATCH,
                             epochs=1, leaky_relu_slope=LEAKY_RELU_SLOPE)
        model = Network(typed)
        x = rng.standard_normal((SAMPLES, *typed.input_shape)).astype(dtype)
        targets = model.targets(rng.integers(0, 3, SAMPLES))
        masks = dropout_masks(typed, 0, SAMPLES)
        reference = make_backend("scratch", typed, model.weights, model.biases)
        for twin in TWINS:
            backend = twin_or_refusal(twin, typed, model)
            if backend is None:
                continue
            check_parity(backend, reference, x, targets, masks,
                         repro=f"a drawn net: {typed.describe_stack()}")
            if train and dtype == "float64":
                plan = list(training_plan(typed, SAMPLES))
                parity = compare_training(twin, "scratch", typed, model.tensors, x, targets,
                                          plan, make_backend=make_backend)
                assert parity.ok, [typed.describe_stack(), *parity.describe_failures()]


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_stacks())
def test_a_random_conv_net_in_every_twin(spec):
    check_net(spec, train=True)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_stacks())
def test_more_random_conv_nets_in_every_twin(spec):
    check_net(spec, train=True)
