"""The model spec (validation, JSON) and the shared weight file (round trip, bad files).

Every bad spec must raise exactly :class:`SpecError` (not a subclass, no chained cause) whose
message names the offending field; every bad weight file exactly one :class:`WeightFileError`
naming the file and, where there is one, the tensor. Bad files are built with
``safetensors.numpy.save_file`` (or, where NumPy cannot express the content, by hand).
"""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from scratch.errors import SpecError, WeightFileError
from scratch.model import MLP, load_model, save_model
from scratch.spec import CONVENTIONS, FRAMEWORK_DEFAULTS, OPTIMIZERS, ModelSpec, OptimizerSpec
from scratch.weights import FORMAT_V1, load_weights, save_weights

SPEC = ModelSpec((4, 3, 2), hidden_activation="tanh", output_activation="sigmoid", loss="bce",
                 init="torch_default", seed=3)

ROUND_TRIP_SPECS = {
    "default": ModelSpec((2, 2)),
    "seed-002": ModelSpec((784, 64, 32, 10), init="lecun_normal", epochs=800),
    "bce-adam-keras": SPEC.replace(optimizer=OptimizerSpec.framework_default("adam", "keras"), batch_size=16),
    "rmsprop-momentum": ModelSpec((3, 5, 5, 1), output_activation="identity", loss="mse", dtype="float32",
                                  optimizer=OptimizerSpec(name="rmsprop", momentum=0.5, rho=0.8,
                                                          epsilon=1e-6),
                                  l2=1e-4, dropout=0.25, leaky_relu_slope=0.2, hidden_activation="leaky_relu",
                                  shuffle=False, batch_size=7, epochs=3),
}


# --------------------------------------------------------------------------- spec


@pytest.mark.parametrize("spec", ROUND_TRIP_SPECS.values(), ids=ROUND_TRIP_SPECS.keys())
def test_json_round_trip(spec):
    text = spec.to_json()
    back = ModelSpec.from_json(text)
    assert back == spec
    assert back.to_json() == text
    assert isinstance(back.layer_sizes, tuple) and isinstance(back.optimizer, OptimizerSpec)
    stored = json.loads(text)
    assert [stored["inputs"]] + [layer["units"] for layer in stored["layers"] if layer["kind"] == "dense"] \
        == list(spec.layer_sizes)


def test_list_layer_sizes_become_a_tuple():
    assert ModelSpec([3, 2]).layer_sizes == (3, 2)


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_framework_default_uses_the_table(name, convention):
    spec = OptimizerSpec.framework_default(name, convention)
    assert (spec.name, spec.convention) == (name, convention)
    for field_name, value in FRAMEWORK_DEFAULTS[(name, convention)].items():
        assert getattr(spec, field_name) == value, field_name
    overridden = OptimizerSpec.framework_default(name, convention, learning_rate=0.123)
    assert overridden.learning_rate == 0.123


# What torch.optim and keras.optimizers do with no arguments (torch 2.13: SGD(lr=1e-3),
# RMSprop(lr=1e-2, alpha=0.99, eps=1e-8), Adam(lr=1e-3, eps=1e-8); Keras 3: SGD(0.01),
# RMSprop(0.001, rho=0.9, epsilon=1e-7), Adam(0.001, epsilon=1e-7)). torch.optim.SGD's lr has
# defaulted to 1e-3 since torch 2.2 (pytorch/pytorch#114467). The momentum optimizers take μ = 0.9,
# since neither framework's default (μ = 0) is a momentum optimizer.
FRAMEWORK_FACTS = {
    ("sgd", "torch"): dict(learning_rate=1e-3),
    ("sgd", "keras"): dict(learning_rate=0.01),
    ("momentum", "torch"): dict(learning_rate=1e-3, momentum=0.9),
    ("momentum", "keras"): dict(learning_rate=0.01, momentum=0.9),
    ("rmsprop", "torch"): dict(learning_rate=0.01, rho=0.99, epsilon=1e-8),
    ("rmsprop", "keras"): dict(learning_rate=0.001, rho=0.9, epsilon=1e-7),
    ("adam", "torch"): dict(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8),
    ("adam", "keras"): dict(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-7),
}


@pytest.mark.parametrize("name, convention", list(FRAMEWORK_FACTS),
                         ids=[f"{n}-{c}" for n, c in FRAMEWORK_FACTS])
def test_framework_default_matches_the_frameworks(name, convention):
    spec = OptimizerSpec.framework_default(name, convention)
    for field_name, value in FRAMEWORK_FACTS[(name, convention)].items():
        assert getattr(spec, field_name) == value, f"{name}/{convention} {field_name}"


def test_framework_default_rejects_unknown_names():
    with pytest.raises(SpecError, match=re.escape("'optimizer.name'")):
        OptimizerSpec.framework_default("adagrad", "torch")
    with pytest.raises(SpecError, match=re.escape("'optimizer.convention'")):
        OptimizerSpec.framework_default("adam", "jax")


def opt(**fields):
    return lambda: OptimizerSpec(**fields)


def model(**fields):
    fields.setdefault("layer_sizes", (3, 2))
    return lambda: ModelSpec(**fields)


def from_json(data):
    return lambda: ModelSpec.from_json(data if isinstance(data, str) else json.dumps(data))


BAD_SPECS = {
    "unknown hidden activation": (model(hidden_activation="swish"), "'hidden_activation'"),
    "softmax as hidden activation": (model(hidden_activation="softmax"), "'hidden_activation'"),
    "unknown output activation": (model(output_activation="relu"), "'output_activation'"),
    "unknown loss": (model(loss="hinge"), "'loss'"),
    "unknown init": (model(init="xavier"), "'init'"),
    "unknown optimizer": (opt(name="adagrad"), "'optimizer.name'"),
    "unknown convention": (opt(convention="jax"), "'optimizer.convention'"),
    "cce with sigmoid": (model(loss="cce", output_activation="sigmoid"), "'output_activation'"),
    "bce with softmax": (model(loss="bce", output_activation="softmax"), "'output_activation'"),
    "bce with identity": (model(loss="bce", output_activation="identity"), "'output_activation'"),
    "softmax with one unit": (model(layer_sizes=(3, 1)), "'layer_sizes'"),
    "layer size 0": (model(layer_sizes=(3, 0, 2)), re.escape("'layer_sizes[1]'")),
    "layer size -4": (model(layer_sizes=(-4, 2)), re.escape("'layer_sizes[0]'")),
    "layer size True": (model(layer_sizes=(3, True, 2)), re.escape("'layer_sizes[1]'")),
    "layer size 2.0": (model(layer_sizes=(3, 2.0)), re.escape("'layer_sizes[1]'")),
    "one layer size": (model(layer_sizes=(3,)), "'layer_sizes'"),
    "no layer sizes": (model(layer_sizes=()), "'layer_sizes'"),
    "layer sizes not a sequence": (model(layer_sizes=5), "'layer_sizes'"),
    "lr 0": (opt(learning_rate=0.0), "'optimizer.learning_rate'"),
    "lr negative": (opt(learning_rate=-0.1), "'optimizer.learning_rate'"),
    "lr nan": (opt(learning_rate=float("nan")), "'optimizer.learning_rate'"),
    "lr string": (opt(learning_rate="0.1"), "'optimizer.learning_rate'"),
    "dropout 1.0": (model(dropout=1.0), "'dropout'"),
    "dropout -0.1": (model(dropout=-0.1), "'dropout'"),
    "momentum optimizer with momentum 0": (opt(name="momentum"), "'optimizer.momentum'"),
    "momentum 1.0": (opt(name="momentum", momentum=1.0), "'optimizer.momentum'"),
    "sgd with momentum": (opt(name="sgd", momentum=0.9), "'optimizer.momentum'"),
    "adam with momentum": (opt(name="adam", momentum=0.9), "'optimizer.momentum'"),
    "sgd with rho": (opt(name="sgd", rho=0.5), "'optimizer.rho'"),
    "sgd with epsilon": (opt(name="sgd", epsilon=1e-3), "'optimizer.epsilon'"),
    "momentum with beta1": (opt(name="momentum", momentum=0.9, beta1=0.8), "'optimizer.beta1'"),
    "rmsprop with beta2": (opt(name="rmsprop", beta2=0.9), "'optimizer.beta2'"),
    "adam with rho": (opt(name="adam", rho=0.5), "'optimizer.rho'"),
    "epsilon 0": (opt(name="adam", epsilon=0.0), "'optimizer.epsilon'"),
    "beta1 1.0": (opt(name="adam", beta1=1.0), "'optimizer.beta1'"),
    "optimizer as dict": (model(optimizer={"name": "sgd"}), "'optimizer'"),
    "epochs 0": (model(epochs=0), "'epochs'"),
    "batch_size 0": (model(batch_size=0), "'batch_size'"),
    "batch_size 2.5": (model(batch_size=2.5), "'batch_size'"),
    "seed -1": (model(seed=-1), "'seed'"),
    "dtype float16": (model(dtype="float16"), "'dtype'"),
    "l2 negative": (model(l2=-1e-3), "'l2'"),
    "leaky slope 0": (model(leaky_relu_slope=0.0), "'leaky_relu_slope'"),
    "shuffle 1": (model(shuffle=1), "'shuffle'"),
    "json unknown field": (from_json({"layer_sizes": [3, 2], "learning_rate": 0.1}), "'learning_rate'"),
    "json unknown optimizer field": (from_json({"layer_sizes": [3, 2], "optimizer": {"lr": 0.1}}),
                                     "'optimizer.lr'"),
    "json missing layer_sizes": (from_json({"loss": "cce"}), "'layer_sizes'"),
    "json optimizer not an object": (from_json({"layer_sizes": [3, 2], "optimizer": "adam"}), "'optimizer'"),
    "json not an object": (from_json("[3, 2]"), "expected a JSON object"),
    "malformed json": (from_json('{"layer_sizes": [3, 2'), "malformed JSON"),
    "json epochs 0": (from_json({"layer_sizes": [3, 2], "epochs": 0}), "'epochs'"),
}


@pytest.mark.parametrize("build, match", BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_bad_spec_raises_spec_error(build, match):
    with pytest.raises(SpecError, match=match) as info:
        build()
    assert type(info.value) is SpecError
    assert info.value.__cause__ is None


def test_replace_validates_again():
    with pytest.raises(SpecError, match="'dropout'"):
        SPEC.replace(dropout=1.5)


# --------------------------------------------------------------------------- weight file


def random_parameters(spec: ModelSpec, rng):
    sizes = spec.layer_sizes
    weights = [rng.normal(size=(n, m)).astype(spec.dtype) for m, n in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [rng.normal(size=n).astype(spec.dtype) for n in sizes[1:]]
    return weights, biases


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_is_bit_exact(tmp_path, rng, dtype):
    spec = SPEC.replace(dtype=dtype, layer_sizes=(5, 4, 3, 1))
    weights, biases = random_parameters(spec, rng)
    path = save_weights(tmp_path / "w.safetensors", spec, weights, biases)
    loaded = load_weights(path)
    assert loaded.spec == spec
    for name, got, want in zip(["W1", "W2", "W3", "b1", "b2", "b3"], loaded.weights + loaded.biases,
                               weights + biases, strict=True):
        assert got.dtype == np.dtype(dtype) and got.shape == want.shape, name
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8), err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_model_load_model(tmp_path, dtype):
    original = MLP(SPEC.replace(dtype=dtype))
    path = tmp_path / "sub" / "model.safetensors"        # the folder is created
    save_model(original, path)
    restored = load_model(path)
    assert restored.spec == original.spec
    for got, want in zip(restored.parameters, original.parameters, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    x = np.linspace(-1, 1, 12).reshape(3, 4).astype(dtype)
    np.testing.assert_array_equal(restored.forward(x).output, original.forward(x).output)


def good_tensors(spec=SPEC):
    weights, biases = random_parameters(spec, np.random.default_rng(0))
    return {"W1": weights[0], "b1": biases[0], "W2": weights[1], "b2": biases[1]}


def good_metadata(spec=SPEC):
    """Format 1's metadata: the bad-file cases below are format-1 files (W1, b1, …), which every
    version still reads; format 2's own cases follow them."""
    return {"format": FORMAT_V1, "spec": spec.to_json()}


def write(path, tensors=None, metadata=None):
    save_file(good_tensors() if tensors is None else tensors, str(path),
              metadata=good_metadata() if metadata is None else metadata)
    return path


def raw_file(header: dict, data: bytes) -> bytes:
    """A safetensors file by hand: 8-byte little-endian header length, JSON header, data."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def bad_file(kind: str, path):
    tensors = good_tensors()
    if kind == "truncated":
        raw = write(path).read_bytes()
        path.write_bytes(raw[: len(raw) - 10])
    elif kind == "header cut":
        path.write_bytes(write(path).read_bytes()[:40])
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(1).bytes(300))
    elif kind == "garbage header":
        path.write_bytes(struct.pack("<Q", 100) + np.random.default_rng(2).bytes(300))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "missing tensor":
        del tensors["b2"]
        write(path, tensors)
    elif kind == "extra tensor":
        tensors["W3"] = np.zeros((2, 2))
        write(path, tensors)
    elif kind == "wrong shape":
        tensors["W2"] = tensors["W2"].T.copy()
        write(path, tensors)
    elif kind == "float32 tensors":
        write(path, {name: t.astype(np.float32) for name, t in tensors.items()})
    elif kind == "int tensor":
        tensors["b1"] = np.zeros(3, dtype=np.int64)
        write(path, tensors)
    elif kind == "nan":
        tensors["W1"][1, 2] = np.nan
        write(path, tensors)
    elif kind == "inf":
        tensors["b2"][0] = -np.inf
        write(path, tensors)
    elif kind == "no metadata":
        save_file(tensors, str(path))
    elif kind == "metadata without spec":
        write(path, metadata={"format": FORMAT_V1})
    elif kind == "spec disagrees":
        write(path, metadata=good_metadata(SPEC.replace(layer_sizes=(4, 5, 2))))
    elif kind == "spec with fewer layers":
        write(path, metadata=good_metadata(SPEC.replace(layer_sizes=(4, 2))))
    elif kind == "spec dtype float32":
        write(path, metadata=good_metadata(SPEC.replace(dtype="float32")))
    elif kind == "spec invalid":
        bad_spec = json.dumps({"layer_sizes": [4, 3, 2], "loss": "hinge"})
        write(path, metadata={"format": FORMAT_V1, "spec": bad_spec})
    elif kind == "spec malformed json":
        write(path, metadata={"format": FORMAT_V1, "spec": "{not json"})
    elif kind == "wrong format tag":
        write(path, metadata={"format": "backprop-parity/3", "spec": SPEC.to_json()})
    elif kind == "bfloat16 tensors":
        # NumPy has no bfloat16, so this file (as torch would write it) is built by hand.
        header = {"__metadata__": good_metadata()}
        offset = 0
        for name, tensor in tensors.items():
            size = tensor.size * 2
            header[name] = {"dtype": "BF16", "shape": list(tensor.shape),
                            "data_offsets": [offset, offset + size]}
            offset += size
        path.write_bytes(raw_file(header, bytes(offset)))
    elif kind == "nonexistent":
        pass
    elif kind == "a folder":
        path.mkdir()
    else:
        raise AssertionError(kind)
    return path


# (kind, what the message must also name besides the path)
BAD_FILES = {
    "truncated": "not a readable safetensors file",
    "header cut": "not a readable safetensors file",
    "random bytes": "not a readable safetensors file",
    "garbage header": "not a readable safetensors file",
    "empty": "not a readable safetensors file",
    "missing tensor": "b2",
    "extra tensor": "W3",
    "wrong shape": "W2",
    "float32 tensors": "W1",
    "int tensor": "b1",
    "nan": "W1",
    "inf": "b2",
    "no metadata": "format",
    "metadata without spec": "spec",
    "spec disagrees": "W1",
    "spec with fewer layers": "W2",
    "spec dtype float32": "W1",
    "spec invalid": "'loss'",
    "spec malformed json": "malformed JSON",
    "wrong format tag": "backprop-parity/3",
    "bfloat16 tensors": "W1",
    "nonexistent": "cannot read",
    "a folder": "cannot read",
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_weight_file_raises_weight_file_error(kind, tmp_path):
    path = bad_file(kind, tmp_path / "bad.safetensors")
    with pytest.raises(WeightFileError) as info:
        load_weights(path)
    message = str(info.value)
    assert type(info.value) is WeightFileError
    assert str(path) in message, message
    assert BAD_FILES[kind] in message, message


@pytest.mark.parametrize("kind", ["wrong shape", "float32", "nan", "missing layer"])
def test_failed_save_leaves_nothing(kind, tmp_path):
    weights, biases = random_parameters(SPEC, np.random.default_rng(0))
    if kind == "wrong shape":
        weights[1] = weights[1].T
    elif kind == "float32":
        biases[0] = biases[0].astype(np.float32)
    elif kind == "nan":
        weights[0][0, 0] = np.nan
    else:
        weights, biases = weights[:1], biases[:1]
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(WeightFileError, match=re.escape(str(folder / "w.safetensors"))):
        save_weights(folder / "w.safetensors", SPEC, weights, biases)
    assert list(folder.iterdir()) == []


def test_save_rejects_extra_layers(tmp_path):
    """More weights than the spec has layers must not be dropped silently."""
    weights, biases = random_parameters(SPEC.replace(layer_sizes=(4, 3, 2, 2)), np.random.default_rng(0))
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(WeightFileError):
        save_weights(folder / "w.safetensors", SPEC, weights, biases)
    assert list(folder.iterdir()) == []


def test_save_overwrites_atomically(tmp_path):
    spec64 = SPEC
    path = tmp_path / "w.safetensors"
    first = random_parameters(spec64, np.random.default_rng(1))
    second = random_parameters(spec64, np.random.default_rng(2))
    save_weights(path, spec64, *first)
    save_weights(path, spec64, *second)
    loaded = load_weights(path)
    np.testing.assert_array_equal(loaded.weights[0], second[0][0])
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]
