"""The shared weight file carries parameters between backends bit for bit, every backend is
bitwise deterministic, and the two Adam/RMSprop conventions differ measurably while each
matches its own twin."""

from __future__ import annotations

import numpy as np
import pytest
from cases import make_case

from judge.parity import compare_curves, compare_parameters, relative_error
from scratch.batching import training_plan
from scratch.spec import ModelSpec, OptimizerSpec
from scratch.weights import load_weights, save_weights
from twins.backends import make_backend_from_file


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_weight_handoff_scratch_torch_keras_jax_scratch_is_bit_exact(dtype, tmp_path, global_seed):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    pytest.importorskip("jax")
    spec = ModelSpec((784, 64, 32, 10), dtype=dtype, init="lecun_normal", seed=global_seed)
    case = make_case(spec, 2, global_seed)
    path = save_weights(tmp_path / "scratch.safetensors", spec, case.weights, case.biases)
    for hop, name in enumerate(["torch", "keras", "jax", "scratch"]):
        backend = make_backend_from_file(name, path)
        path = backend.save(tmp_path / f"hop{hop}-{name}.safetensors")
    final = load_weights(path)
    assert final.spec == spec
    for original, returned in zip(case.weights + case.biases, final.weights + final.biases, strict=True):
        assert returned.dtype == original.dtype
        assert returned.tobytes() == original.tobytes()


@pytest.mark.parametrize("dtype", ["float64", pytest.param("float32", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name,convention", [("scratch", "torch"), ("scratch", "keras"),
                                             ("torch", "torch"), ("keras", "keras"), ("jax", "optax")])
def test_each_backend_is_bitwise_deterministic(name, convention, dtype, global_seed):
    """Two runs from the same spec and seed (parameters, data and plan built afresh each time)."""
    spec = ModelSpec((10, 8, 6, 4), dropout=0.25, l2=2.0 ** -6, batch_size=8, epochs=2, seed=global_seed,
                     dtype=dtype,
                     optimizer=OptimizerSpec.framework_default("adam", convention, learning_rate=0.01))
    runs = []
    for _ in range(2):
        case = make_case(spec, 30, global_seed)
        backend = case.backend(name)
        curve = backend.fit(case.x, case.targets, training_plan(spec, len(case.x)))
        runs.append((curve, backend.parameters()))
    (curve_a, (w_a, b_a)), (curve_b, (w_b, b_b)) = runs
    assert curve_a.tobytes() == curve_b.tobytes()
    for first, second in zip(w_a + b_a, w_b + b_b, strict=True):
        assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_conventions_differ_but_each_matches_its_twin(optimizer, global_seed):
    """Same start, same data, same hyperparameters (ε = 1e-7 in both): after 30 steps the torch
    and Keras conventions are far apart — many orders above the float64 tolerance — while each
    stays within tolerance of its own framework."""
    shared = dict(learning_rate=0.01, epsilon=1e-7)
    if optimizer == "rmsprop":
        shared["rho"] = 0.9
    curves, params = {}, {}
    for convention, twin in (("torch", "torch"), ("keras", "keras")):
        spec = ModelSpec((12, 8, 3), batch_size=10, epochs=3, seed=global_seed,
                         optimizer=OptimizerSpec(optimizer, convention, **shared))
        case = make_case(spec, 100, global_seed)
        plan = list(training_plan(spec, len(case.x)))
        scratch, framework = case.backend("scratch"), case.backend(twin)
        curves[convention] = scratch.fit(case.x, case.targets, plan)
        assert compare_curves(framework.fit(case.x, case.targets, plan), curves[convention], "float64").ok
        assert all(c.ok for c in compare_parameters(framework, scratch))
        params[convention] = scratch.parameters()[0]
    gap = max(relative_error(t, k) for t, k in zip(params["torch"], params["keras"], strict=True))
    assert gap > 1e-8, f"torch- and keras-convention {optimizer} should differ; gap {gap:.2e}"
    assert not np.array_equal(curves["torch"], curves["keras"])
