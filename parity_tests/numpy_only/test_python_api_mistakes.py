"""The Python API's edges: what a user calling ``scratch`` directly
gets for four easy mistakes — one clear project error each, never a bare ``TypeError``, a
``MemoryError`` or an ``IsADirectoryError`` naming a hidden temporary file."""

from __future__ import annotations

import re

import numpy as np
import pytest

from scratch.errors import DataError, SpecError, WeightFileError
from scratch.layer_specs import BatchNormSpec, DenseSpec, DropoutSpec, LayerNormSpec
from scratch.memory import check_network_fits, network_bytes
from scratch.model import MLP, Network, load_model, save_model
from scratch.spec import ModelSpec, OptimizerSpec


def test_save_model_into_a_folder_names_the_folder_not_a_temporary_file(tmp_path):
    with pytest.raises(WeightFileError) as info:
        save_model(MLP(ModelSpec((3, 2))), tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: is a folder; expected a file path"), message
    assert ".tmp" not in message
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_names_the_path_given(tmp_path, monkeypatch):
    import os

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", src)          # names the temporary file

    monkeypatch.setattr(os, "replace", refuse)
    path = tmp_path / "m.safetensors"
    with pytest.raises(WeightFileError, match=rf"^{re.escape(str(path))}: cannot write "
                                              r"\(Permission denied\)$"):
        save_model(MLP(ModelSpec((3, 2))), path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("given", ["x_test", "y_test"])
def test_fit_with_half_a_test_set_is_one_data_error(given):
    model = MLP(ModelSpec((3, 4, 2), epochs=1))
    x, y = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    test = {"x_test": x, "y_test": None} if given == "x_test" else {"x_test": None, "y_test": y}
    before = [p.copy() for p in model.parameters]
    missing = "y_test" if given == "x_test" else "x_test"
    with pytest.raises(DataError, match=rf"^test data: {given} given without {missing}; x_test and y_test go "
                                        r"together"):
        model.fit(x, y, **test)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.parameters, strict=True))


NUMPY_TYPES = [np.float32, np.float64, np.float16]


@pytest.mark.parametrize("kind", NUMPY_TYPES, ids=lambda kind: kind.__name__)
def test_numpy_real_scalars_are_numbers(kind, tmp_path):
    """λ, a dropout rate, the leaky-ReLU slope, BatchNorm's decay and ε, LayerNorm's ε and every
    optimizer setting take a NumPy scalar as the Python number of the same value
    (``float(np.float32(0.1))``, the float32's own value); the spec's JSON holds it and the
    weight file round-trips it."""
    layers = (DenseSpec(4), BatchNormSpec(decay=kind(0.75), epsilon=kind(1e-3)), DropoutSpec(kind(0.25)),
              DenseSpec(4), LayerNormSpec(epsilon=kind(1e-3)), DenseSpec(2, "softmax"))
    spec = ModelSpec(inputs=3, layers=layers,
                     l2=kind(0.125), leaky_relu_slope=kind(0.5),
                     optimizer=OptimizerSpec("adam", learning_rate=kind(0.01), beta1=kind(0.875)))
    assert (spec.l2, spec.layers[1].decay, spec.dropout_rates[1]) == (0.125, 0.75, 0.25)
    assert spec.optimizer.learning_rate == float(kind(0.01))
    numbers = [spec.l2, spec.leaky_relu_slope, spec.layers[1].decay, spec.layers[1].epsilon,
               spec.layers[2].rate, spec.layers[4].epsilon, spec.optimizer.learning_rate,
               spec.optimizer.beta1]
    assert all(type(number) is float for number in numbers)
    assert ModelSpec.from_json(spec.to_json()) == spec
    save_model(Network(spec), tmp_path / "m.safetensors")
    assert load_model(tmp_path / "m.safetensors").spec == spec


def test_numpy_integer_scalars_are_numbers():
    spec = ModelSpec((3, 2), l2=np.int64(0), optimizer=OptimizerSpec(learning_rate=np.int8(1)))
    assert (type(spec.l2), type(spec.optimizer.learning_rate)) == (int, int)


@pytest.mark.parametrize("value, shown", [(True, "True"), (np.float32("nan"), "nan"), ("0.1", "'0.1'"),
                                          (np.float64("inf"), "inf"), (None, "None")])
def test_non_numbers_are_still_refused(value, shown):
    with pytest.raises(SpecError, match=rf"^spec field 'l2': expected a finite number, got "
                                        rf"{re.escape(shown)}$"):
        ModelSpec((3, 2), l2=value)


def test_numpy_bool_is_no_number():
    with pytest.raises(SpecError, match=r"^spec field 'dropout': expected a finite number"):
        ModelSpec((3, 4, 2), dropout=np.bool_(True))


def test_a_network_too_large_to_build_is_a_spec_error_before_allocating(monkeypatch):
    spec = ModelSpec((784, 10**8, 10))
    with pytest.raises(SpecError, match=r"^spec field 'layer_sizes': layer 1 \(784 → 100000000\) alone has "
                                        r"78,500,000,000 parameters; building the network needs at least "
                                        r"[\d.]+ TiB .* but only [\d.]+ \S+ of memory is available$"):
        Network(spec)
    # the check runs before any allocation: with the allocator refusing everything, still the SpecError
    monkeypatch.setattr("scratch.model.initialize_tensors", lambda *a, **k: pytest.fail("allocated"))
    with pytest.raises(SpecError):
        Network(spec)


def test_the_network_size_check_is_the_documented_bound():
    """2·Σ values·itemsize + 2·8·(largest layer), against the spec's own parameter count."""
    spec = ModelSpec((5, 4, 3), dtype="float32")
    values = [5 * 4 + 4, 4 * 3 + 3]
    needed = 2 * sum(values) * 4 + 2 * 8 * max(values)
    assert network_bytes(spec, "float32") == needed
    check_network_fits(spec, "float32", available=needed)
    with pytest.raises(SpecError, match=r"layer 1 \(5 → 4\) alone has 24 parameters"):
        check_network_fits(spec, "float32", available=needed - 1)


def test_the_cli_and_the_api_share_the_available_memory_reading():
    from reports.cli import model_memory
    from scratch import memory

    assert model_memory.available_bytes is memory.available_bytes
