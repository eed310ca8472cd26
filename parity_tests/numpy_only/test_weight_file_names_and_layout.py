"""Weight file format 2: tensors named per layer and parameter, the layout in the metadata, and
format 1 still read. Every file here is built by hand or by ``save_weights``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from scratch.errors import WeightFileError
from scratch.layer_specs import DenseSpec, DropoutSpec
from scratch.model import MLP
from scratch.spec import ModelSpec
from scratch.weights import FORMAT, FORMAT_V1, LAYOUTS, load_weights, save_weights

SPEC = ModelSpec(inputs=4, layers=(DenseSpec(3, "tanh"), DropoutSpec(0.5), DenseSpec(3, "relu"),
                                   DenseSpec(2, "softmax")))


def parameters(spec=SPEC):
    model = MLP(spec)
    return model.weights, model.biases


def metadata_of(path) -> dict:
    with safe_open(str(path), "np") as handle:
        return handle.metadata()


def test_format_2_names_tensors_by_layer_position_and_parameter(tmp_path):
    weights, biases = parameters()
    path = save_weights(tmp_path / "m.safetensors", SPEC, weights, biases)
    with safe_open(str(path), "np") as handle:
        names = set(handle.keys())
        stored = {name: handle.get_tensor(name) for name in names}
    assert names == {"layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
                     "layers.3.weight", "layers.3.bias"}            # layers[1] is the dropout
    np.testing.assert_array_equal(stored["layers.2.weight"], weights[1])
    assert stored["layers.3.weight"].shape == (2, 3)                  # out_in, like nn.Linear
    metadata = metadata_of(path)
    assert metadata["format"] == FORMAT
    assert json.loads(metadata["layout"]) == {"dense": LAYOUTS["dense"]} == {"dense": "out_in"}
    assert ModelSpec.from_json(metadata["spec"]) == SPEC
    loaded = load_weights(path)
    assert loaded.spec == SPEC
    for got, want in zip(loaded.weights + loaded.biases, weights + biases, strict=True):
        np.testing.assert_array_equal(got, want)


def format_1_file(path, spec, weights, biases):
    """A file as format 1 wrote it: W1, b1, … and the shorthand spec JSON, no layout entry."""
    tensors = {}
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True), start=1):
        tensors[f"W{layer}"], tensors[f"b{layer}"] = w, b
    shorthand = {"layer_sizes": list(spec.layer_sizes), "hidden_activation": spec.hidden_activation,
                 "output_activation": spec.output_activation, "loss": spec.loss, "init": spec.init,
                 "dtype": spec.dtype, "dropout": spec.dropout}
    save_file(tensors, str(path), metadata={"format": FORMAT_V1, "spec": json.dumps(shorthand)})
    return path


def test_format_1_files_still_load(tmp_path):
    spec = ModelSpec((4, 3, 2), hidden_activation="tanh", dropout=0.25)
    weights, biases = parameters(spec)
    loaded = load_weights(format_1_file(tmp_path / "v1.safetensors", spec, weights, biases))
    assert loaded.spec == spec
    for got, want in zip(loaded.weights + loaded.biases, weights + biases, strict=True):
        np.testing.assert_array_equal(got, want)


def format_2_file(path, metadata_changes):
    weights, biases = parameters()
    good = save_weights(path, SPEC, weights, biases)
    with safe_open(str(good), "np") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        metadata = handle.metadata()
    metadata.update(metadata_changes)
    metadata = {key: value for key, value in metadata.items() if value is not None}
    save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("changes, message", [
    ({"layout": None}, "metadata has no 'layout'"),
    ({"layout": json.dumps({"dense": "in_out"})}, "unknown layout 'in_out' for dense layers; this version "
                                                  "reads 'out_in'"),
    ({"layout": json.dumps({"dense": "out_in", "conv": "OIHW"})}, "names layer type 'conv'"),
    ({"layout": json.dumps({})}, "gives no layout for dense layers"),
    ({"layout": "{dense"}, "metadata 'layout' is malformed JSON"),
    ({"layout": json.dumps(["out_in"])}, "metadata 'layout' must be a JSON object"),
])
def test_a_missing_or_unknown_layout_is_one_clear_error(tmp_path, changes, message):
    path = format_2_file(tmp_path / "bad.safetensors", changes)
    with pytest.raises(WeightFileError) as error:
        load_weights(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_format_2_names_are_checked_as_format_2(tmp_path):
    """A format-2 file with format 1's tensor names is missing every format-2 tensor."""
    weights, biases = parameters()
    path = tmp_path / "mixed.safetensors"
    tensors = {f"{k}{i}": p for i, (w, b) in enumerate(zip(weights, biases, strict=True), start=1)
               for k, p in (("W", w), ("b", b))}
    save_file(tensors, str(path), metadata={"format": FORMAT, "spec": SPEC.to_json(),
                                            "layout": json.dumps({"dense": "out_in"})})
    with pytest.raises(WeightFileError, match=r"missing tensor\(s\) layers\.0\.weight"):
        load_weights(path)
