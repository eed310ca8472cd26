"""Train → check, as a user runs them, over a matrix of small models (slow; issue 18, 1.4).

Each *flow* trains a model from :data:`SPECS` with the ``train`` command in-process (the CLI's
own code path, on the first MNIST rows; every spec has 784 inputs and 10 outputs, so ``check``
feeds it MNIST rows too), then runs ``check --weights FILE --batch 32 --steps 2`` on the saved
file. The flows are every spec × float32 and float64 × two trained states (:data:`STATES`: two
steps on 64 rows, and two epochs on 960); each must exit 0 with at least two backends run and
at least one pair trained. Together the specs hold every layer kind — conv2d with stride 2,
dilation 2, "same", "valid" and explicit padding; max, average (overlapping too) and global
average pooling; both Flatten orders; BatchNorm after a conv and after a dense layer, in torch's
and Keras's settings; LayerNorm; dropout; PReLU per channel on maps and shared after a dense
layer — under the torch, Keras and optax optimizer
conventions.

Then the same flows (the trained weight files) are checked with a real bug injected into the
engine's conv, pooling or normalization code (:data:`BUGS`, each patched onto the layer class
with ``monkeypatch`` and undone after its test): each must exit 1.
"""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest

from reports.cli.exit_codes import EXIT_OK, EXIT_PARITY_FAILED
from reports.cli.main import main
from scratch.layers.conv import Conv2D
from scratch.layers.normalization import BatchNorm, LayerNorm
from scratch.layers.pooling import AvgPool2D, GlobalAveragePooling2D, MaxPool2D

pytestmark = pytest.mark.slow

DTYPES = ("float32", "float64")
# Two trained states of each model: two steps on 64 rows, and two epochs on 960 rows (60 steps).
STATES = {"early": ["--limit", "64", "--epochs", "1"], "trained": ["--limit", "960", "--epochs", "2"]}
CHECK = ["--batch", "32", "--steps", "2"]
SLOPE = 2.0 ** -5            # a leaky-ReLU slope exact in float32, which Keras's LeakyRelu requires

KERAS_BN = {"kind": "batch_norm", "decay": 0.99, "epsilon": 1e-3, "running_variance": "biased"}
TORCH_BN = {"kind": "batch_norm", "decay": 0.9, "epsilon": 1e-5, "running_variance": "unbiased"}


def _spec(convention: str, optimizer: dict, layers: list, inputs=(1, 28, 28), seed: int = 0) -> dict:
    return {"inputs": list(inputs), "loss": "cce", "init": "glorot_uniform", "batch_size": 32, "epochs": 1,
            "seed": seed, "dtype": "float64", "leaky_relu_slope": SLOPE,
            "optimizer": {"convention": convention, **optimizer}, "layers": layers}


def _conv(filters, kernel, activation="relu", **settings) -> dict:
    return {"kind": "conv2d", "filters": filters, "kernel_size": kernel, "activation": activation, **settings}


DENSE_OUT = {"kind": "dense", "units": 10, "activation": "softmax"}
MOMENTUM = {"name": "momentum", "learning_rate": 0.01, "momentum": 0.9}
KERAS_RMSPROP = {"name": "rmsprop", "learning_rate": 0.001, "rho": 0.9, "epsilon": 1e-7}

# name → spec (as the JSON file a user writes). The optimizer convention decides which twins
# train it (twins.backends.twins_for); a twin that cannot express a spec is skipped by check.
SPECS = {
    # torch: a strided "same" conv, max pooling, channels-first Flatten
    "conv-s2-maxpool-flatten-cf": _spec("torch", MOMENTUM, [
        _conv(4, 3, strides=2, padding="same"),
        {"kind": "max_pool2d", "pool_size": 2},
        {"kind": "flatten", "order": "channels_first"},
        DENSE_OUT]),
    # torch: BatchNorm (torch's settings) after an identity conv, max pooling over its ties,
    # BatchNorm after a dense layer, dropout
    "conv-bn-maxpool-dense-bn": _spec("torch", {"name": "adam", "learning_rate": 0.002}, [
        _conv(4, 3, "identity", padding="same"),
        {**TORCH_BN, "activation": "relu"},
        {"kind": "max_pool2d", "pool_size": 2},
        {"kind": "flatten", "order": "channels_first"},
        {"kind": "dense", "units": 16, "activation": "identity"},
        {**TORCH_BN, "activation": "relu"},
        {"kind": "dropout", "rate": 0.25},
        DENSE_OUT], seed=1),
    # keras: explicit padding, BatchNorm (Keras's settings) after a conv, average pooling, a
    # strided conv, global average pooling (the model, smaller)
    "conv-pad-bn-avgpool-conv-s2-gap": _spec("keras", {"name": "adam", "learning_rate": 0.002}, [
        _conv(4, 5, "identity", padding=[1, 2, 2, 1]),
        {**KERAS_BN, "activation": "relu"},
        {"kind": "avg_pool2d", "pool_size": 2},
        _conv(8, 3, strides=2, padding="same"),
        {"kind": "global_avg_pool2d"},
        DENSE_OUT], seed=2),
    # keras: max pooling over an identity conv's ties (the background), channels-last Flatten
    "conv-maxpool-ties-flatten-cl": _spec("keras", MOMENTUM, [
        _conv(3, 3, "identity", padding="same"),
        {"kind": "max_pool2d", "pool_size": 2},
        _conv(4, 3, "leaky_relu"),
        {"kind": "flatten", "order": "channels_last"},
        DENSE_OUT], seed=3),
    # keras: BatchNorm after a dense layer, dropout
    "dense-bn-dropout": _spec("keras", KERAS_RMSPROP, [
        {"kind": "dense", "units": 32, "activation": "identity"},
        {**KERAS_BN, "activation": "relu"},
        {"kind": "dropout", "rate": 0.25},
        DENSE_OUT], inputs=(784,), seed=4),
    # optax: a dilated "valid" conv, overlapping average pooling, channels-last Flatten
    "conv-d2-avgpool-overlap-flatten-cl": _spec("optax", {"name": "adam", "learning_rate": 0.002}, [
        _conv(4, 3, "tanh", dilation=2),
        {"kind": "avg_pool2d", "pool_size": 3, "strides": 2},
        {"kind": "flatten", "order": "channels_last"},
        DENSE_OUT], seed=5),
    # optax: LayerNorm (torch's and Keras's ε), dropout
    "dense-ln-dropout-ln": _spec("optax", MOMENTUM, [
        {"kind": "dense", "units": 32, "activation": "identity"},
        {"kind": "layer_norm", "epsilon": 1e-5, "activation": "relu"},
        {"kind": "dropout", "rate": 0.2},
        {"kind": "dense", "units": 16, "activation": "identity"},
        {"kind": "layer_norm", "epsilon": 1e-3, "activation": "tanh"},
        DENSE_OUT], inputs=(784,), seed=6),
    # torch: PReLU per channel after an identity conv (torch's slope α at z = 0: Keras's twin cannot
    # express it and is skipped), max pooling, shared PReLU after a dense layer
    "conv-prelu-maxpool-dense-prelu": _spec("torch", MOMENTUM, [
        _conv(4, 3, "identity", padding="same"),
        {"kind": "prelu", "slopes": "per_channel", "alpha_init": 0.25},
        {"kind": "max_pool2d", "pool_size": 2},
        {"kind": "flatten", "order": "channels_first"},
        {"kind": "dense", "units": 16, "activation": "identity"},
        {"kind": "prelu", "slopes": "shared", "alpha_init": 0.1},
        DENSE_OUT], seed=8),
    # optax: MNIST as (4, 14, 14) maps, overlapping max pooling, explicit padding, global
    # average pooling
    "maps-conv-maxpool-overlap-gap": _spec("optax", {"name": "rmsprop", "learning_rate": 0.001}, [
        _conv(6, 3, "leaky_relu"),
        {"kind": "max_pool2d", "pool_size": 3, "strides": 2},
        _conv(8, 2, padding=[0, 1, 0, 1]),
        {"kind": "global_avg_pool2d"},
        DENSE_OUT], inputs=(4, 14, 14), seed=7),
}

FLOWS = [(name, dtype, state) for name in SPECS for dtype in DTYPES for state in STATES]


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    """``backprop-parity ARGV`` in-process: (exit status, stdout and stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """flow → its weight file, trained once (by the ``train`` command) and shared by the tests."""
    files: dict[tuple[str, str, str], str] = {}
    folder = tmp_path_factory.mktemp("matrix")

    def weights(capsys, name: str, dtype: str, state: str) -> str:
        if (name, dtype, state) not in files:
            spec = copy.deepcopy(SPECS[name])
            spec["dtype"] = dtype
            spec_file = folder / f"{name}-{dtype}.json"
            spec_file.write_text(json.dumps(spec), encoding="utf-8")
            path = folder / f"{name}-{dtype}-{state}.safetensors"
            code, output = run_cli(capsys, "train", "--spec", str(spec_file), *STATES[state],
                                   "--save", str(path), "-q")
            assert code == EXIT_OK, output
            files[(name, dtype, state)] = str(path)
        return files[(name, dtype, state)]

    return weights


def backends_ran(output: str) -> list[str]:
    """The backends check's summary line says ran."""
    found = re.search(r"comparisons within tolerance \((?:float32|float64)\), backends ([a-z, ]+?)(?:;|\.$)",
                      output, re.MULTILINE)
    assert found, output
    return found.group(1).split(", ")


def test_the_matrix_covers_every_layer_kind_convention_and_setting():
    layers = [layer for spec in SPECS.values() for layer in spec["layers"]]
    kinds = {layer["kind"] for layer in layers}
    assert kinds == {"conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "flatten", "batch_norm",
                     "layer_norm", "dropout", "dense", "prelu"}
    convs = [layer for layer in layers if layer["kind"] == "conv2d"]
    assert any(layer.get("strides", 1) > 1 for layer in convs)
    assert any(layer.get("dilation", 1) > 1 for layer in convs)
    assert {str(layer.get("padding", "valid")) for layer in convs} >= {"valid", "same", "[1, 2, 2, 1]"}
    orders = {layer["order"] for layer in layers if layer["kind"] == "flatten"}
    assert orders == {"channels_first", "channels_last"}
    assert any(layer.get("strides") not in (None, layer["pool_size"]) for layer in layers
               if layer["kind"] in ("max_pool2d", "avg_pool2d"))               # overlapping windows
    after = {spec["layers"][index - 1]["kind"] for spec in SPECS.values()
             for index, layer in enumerate(spec["layers"]) if layer["kind"] == "batch_norm"}
    assert after == {"conv2d", "dense"}
    assert {spec["optimizer"]["convention"] for spec in SPECS.values()} == {"torch", "keras", "optax"}
    assert len(FLOWS) >= 24


@pytest.mark.parametrize(("name", "dtype", "state"), FLOWS, ids=["-".join(flow) for flow in FLOWS])
def test_a_trained_model_checks_ok(trained, capsys, name, dtype, state):
    path = trained(capsys, name, dtype, state)
    code, output = run_cli(capsys, "check", "--weights", path, *CHECK)
    assert code == EXIT_OK, output
    assert len(backends_ran(output)) >= 2, output
    assert "free-running over 2 steps" in output, output          # at least one pair trained


# --- injected bugs: each a real mistake in the engine's conv, pooling or normalization code ----------


def conv_kernel_gradient_flipped(monkeypatch):
    """dW returned with the kernel's rows and columns reversed (a convolution's gradient taken for
    a cross-correlation's)."""
    original = Conv2D.backward

    def backward(self, dz, x, columns=None, input_gradient=True):
        dw, db, dx = original(self, dz, x, columns, input_gradient)
        return np.ascontiguousarray(dw[:, :, ::-1, ::-1]), db, dx

    monkeypatch.setattr(Conv2D, "backward", backward)


def conv_stride_ignored_in_input_gradient(monkeypatch):
    """col2im scatters dX as if the stride were 1."""
    original = Conv2D.input_gradient

    def input_gradient(self, dz2, x, out_size):
        stride, self.stride = self.stride, 1
        try:
            return original(self, dz2, x, out_size)
        finally:
            self.stride = stride

    monkeypatch.setattr(Conv2D, "input_gradient", input_gradient)


def _max_pool_backward(*, last_first: bool, overwrite: bool):
    """A max-pool backward that walks the window's offsets from the last (``last_first``) and
    writes dZ into dX's offset views (``overwrite``) instead of adding it."""

    def backward(self, dz, x, z=None):
        z = self.forward(x) if z is None else z
        dx = np.zeros_like(x, dz.dtype)
        taken = np.zeros(z.shape, bool)
        offsets = list(zip(self.offsets(x), self.offsets(dx), strict=True))
        for (_, view), (_, dx_view) in (reversed(offsets) if last_first else offsets):
            hit = (view == z) & ~taken
            taken |= hit
            if overwrite:
                np.copyto(dx_view, dz, where=hit)
            else:
                dx_view += np.where(hit, dz, dz.dtype.type(0))
        return dx

    return backward


def max_pool_routes_to_the_last_maximum(monkeypatch):
    """A tied window's gradient goes to its last maximum in row-major order, not the first."""
    monkeypatch.setattr(MaxPool2D, "backward", _max_pool_backward(last_first=True, overwrite=False))


def max_pool_overlaps_overwrite(monkeypatch):
    """Overlapping windows that share a maximum overwrite its gradient instead of adding to it."""
    monkeypatch.setattr(MaxPool2D, "backward", _max_pool_backward(last_first=False, overwrite=True))


def avg_pool_gradient_not_divided(monkeypatch):
    """dX gets dZ itself, not dZ/(p_h·p_w)."""

    def backward(self, dz, x):
        parts = np.broadcast_to(dz[..., None, None], (*dz.shape, *self.pool))
        return self._scatter(parts, x.shape, x)

    monkeypatch.setattr(AvgPool2D, "backward", backward)


def global_avg_pool_divided_by_height(monkeypatch):
    """dX = dZ/H instead of dZ/(H·W)."""

    def backward(self, dz, x):
        return np.broadcast_to((dz / dz.dtype.type(x.shape[2]))[:, :, None, None], x.shape).copy()

    monkeypatch.setattr(GlobalAveragePooling2D, "backward", backward)


def batch_norm_backward_without_the_mean_terms(monkeypatch):
    """dx = γ/√(σ² + ε)·dy: the batch statistics treated as constants."""
    original = BatchNorm.backward

    def backward(self, dy, cache):
        dgamma, dbeta, _ = original(self, dy, cache)
        scale = self.gamma * cache.inv_std
        return dgamma, dbeta, (scale if dy.ndim == 2 else scale[:, None, None]) * dy

    monkeypatch.setattr(BatchNorm, "backward", backward)


def _without_epsilon(monkeypatch, cls):
    original = cls.forward

    def forward(self, *args, **kwargs):
        epsilon, self.epsilon = self.epsilon, 1e-30
        try:
            return original(self, *args, **kwargs)
        finally:
            self.epsilon = epsilon

    monkeypatch.setattr(cls, "forward", forward)


def batch_norm_epsilon_ignored(monkeypatch):
    """x̂ = (x − μ)/√σ²: ε left out of the normalization."""
    _without_epsilon(monkeypatch, BatchNorm)


def layer_norm_epsilon_ignored(monkeypatch):
    """x̂ = (x − μ)/√σ² in LayerNorm."""
    _without_epsilon(monkeypatch, LayerNorm)


# bug → the specs whose layers it breaks
BUGS = {
    conv_kernel_gradient_flipped: ("conv-s2-maxpool-flatten-cf", "conv-pad-bn-avgpool-conv-s2-gap"),
    conv_stride_ignored_in_input_gradient: ("conv-pad-bn-avgpool-conv-s2-gap",),
    max_pool_routes_to_the_last_maximum: ("conv-maxpool-ties-flatten-cl", "conv-bn-maxpool-dense-bn"),
    max_pool_overlaps_overwrite: ("maps-conv-maxpool-overlap-gap",),
    avg_pool_gradient_not_divided: ("conv-d2-avgpool-overlap-flatten-cl", "conv-pad-bn-avgpool-conv-s2-gap"),
    global_avg_pool_divided_by_height: ("maps-conv-maxpool-overlap-gap", "conv-pad-bn-avgpool-conv-s2-gap"),
    batch_norm_backward_without_the_mean_terms: ("conv-pad-bn-avgpool-conv-s2-gap",
                                                 "conv-bn-maxpool-dense-bn", "dense-bn-dropout"),
    batch_norm_epsilon_ignored: ("conv-pad-bn-avgpool-conv-s2-gap", "dense-bn-dropout"),
    layer_norm_epsilon_ignored: ("dense-ln-dropout-ln",),
}
BUGGED_FLOWS = [(bug, name, dtype) for bug, names in BUGS.items() for name in names for dtype in DTYPES]


@pytest.mark.deliberate_mismatch
@pytest.mark.parametrize(("bug", "name", "dtype"), BUGGED_FLOWS,
                         ids=[f"{bug.__name__}-{name}-{dtype}" for bug, name, dtype in BUGGED_FLOWS])
def test_a_bug_in_the_engine_fails_the_check(trained, capsys, monkeypatch, bug, name, dtype):
    path = trained(capsys, name, dtype, "trained")
    bug(monkeypatch)
    code, output = run_cli(capsys, "check", "--weights", path, *CHECK)
    assert code == EXIT_PARITY_FAILED, output
    assert len(backends_ran(output)) >= 2, output
