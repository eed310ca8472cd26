"""Save → load keeps inference bit-identical, in every backend (issue 18, part 1 item 5 and part 4).

For every catalog model, and for BatchNorm CNNs in torch's and Keras's conventions (the catalog has
no BatchNorm model, so these carry the running statistics, set away from their initial 0 and 1):
each backend is built from the parameters and statistics in memory, infers (Z_L, A_L) on a batch,
saves its own weight file; a fresh backend of the same kind loaded from that file infers the same
batch, and the two outputs (and the statistics it holds) must be the same bytes. A backend that
cannot express a spec (torch: a biased running variance; Keras: an unbiased one) is skipped with
its reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratch import catalog
from scratch.errors import BackendError
from scratch.layer_specs import (
    AvgPool2DSpec,
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    GlobalAvgPool2DSpec,
)
from scratch.model import Network
from scratch.spec import ModelSpec, OptimizerSpec
from twins.backends import BACKENDS, available_backends, make_backend, make_backend_from_file


def _bn_cnn(convention: str) -> ModelSpec:
    """The issue's Keras-convention BatchNorm CNN (smaller maps), or its torch twin."""
    keras = convention == "keras"
    norm = (BatchNormSpec(decay=0.99, epsilon=1e-3, running_variance="biased", activation="relu") if keras
            else BatchNormSpec(activation="relu"))
    layers = (Conv2DSpec(6, 5, padding="same", activation="identity"), norm, AvgPool2DSpec(2),
              Conv2DSpec(12, 3, strides=2, padding="same"), GlobalAvgPool2DSpec(),
              DenseSpec(8, "identity"), BatchNormSpec(**{**vars(norm), "activation": "tanh"}),
              DenseSpec(10, "softmax"))
    return ModelSpec(inputs=(1, 12, 12), layers=layers, init="glorot_uniform", batch_size=64, seed=5,
                     dtype="float32", optimizer=OptimizerSpec.framework_default("adam", convention))


SPECS = {name: catalog.spec(name) for name in catalog.MODELS}
SPECS.update({"bn-cnn-keras": _bn_cnn("keras"), "bn-cnn-torch": _bn_cnn("torch"),
              "bn-cnn-torch-float64": _bn_cnn("torch").replace(dtype="float64")})


def _model(spec: ModelSpec, seed: int) -> Network:
    """The spec's initial parameters and running statistics drawn away from 0 and 1."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(spec.dtype)
    statistics = [(rng.normal(0.0, 0.5, spec.layer_shapes[layer][0]).astype(dtype),
                   rng.uniform(0.5, 2.0, spec.layer_shapes[layer][0]).astype(dtype))
                  for layer in spec.statistics_layers]
    return Network(spec, statistics=statistics)


def _same_bytes(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, what
    assert got.tobytes() == want.tobytes(), f"{what}: max |Δ| {np.max(np.abs(got - want))}"


# Keras and JAX build (and JAX compiles) each catalog model in ~0.3–1.5 s: those 22 cases are slow;
# the BatchNorm specs run everywhere by default, the catalog in the engine and torch.
SLOW = {"keras", "jax"}
CASES = [pytest.param(name, backend, id=f"{name}-{backend}", marks=[pytest.mark.slow]
                      if backend in SLOW and not SPECS[name].statistics_layers else [])
         for name in SPECS for backend in BACKENDS]


@pytest.mark.parametrize("name, backend", CASES)
def test_save_load_keeps_inference_bit_identical(tmp_path, name, backend, global_seed):
    if backend not in available_backends():
        pytest.skip(f"{backend}: {BACKENDS[backend][2]} not installed")
    spec = SPECS[name]
    model = _model(spec, global_seed)
    try:
        built = make_backend(backend, spec, statistics=model.statistics, tensors=model.tensors)
    except BackendError as error:
        pytest.skip(f"{backend} cannot express {name}: {error}")
    rng = np.random.default_rng(global_seed)
    x = (rng.integers(0, spec.layers[0].vocabulary, (6, *spec.input_shape)) if spec.token_inputs
         else rng.standard_normal((6, *spec.input_shape)).astype(spec.dtype))
    before = built.inference_outputs(x)
    path = built.save(tmp_path / f"{name}.safetensors")
    loaded = make_backend_from_file(backend, path)
    for got, want, what in zip(loaded.inference_outputs(x), before, ("Z_L", "A_L"), strict=True):
        _same_bytes(got, want, f"{name} in {backend}: {what}")
    for (mean, variance), (held_mean, held_variance) in zip(loaded.statistics(), model.statistics,
                                                            strict=True):
        _same_bytes(mean, held_mean, f"{name} in {backend}: running mean")
        _same_bytes(variance, held_variance, f"{name} in {backend}: running variance")
    if spec.statistics_layers:                         # the statistics matter: initial ones infer otherwise
        initial = make_backend(backend, spec, tensors=model.tensors).inference_outputs(x)[1]
        assert not np.array_equal(initial, before[1])
