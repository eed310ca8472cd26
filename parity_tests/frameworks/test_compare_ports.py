"""``compare`` on framework models: the shipped Keras CNN against its torch ports, a converted
state_dict with the classic flatten mistake, and a double softmax — each verdict and its cause."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reports.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
KERAS_CNN = ROOT / "examples" / "keras_cnn.keras"
PORTS = ROOT / "examples" / "torch_port.py"
FIXED = ("optimizer convention", "hyperparameters held in float32", "BatchNorm running-variance estimator")


def compare(capsys, a, b, *more):
    status = main(["compare", str(a), str(b), "--batch", "8", "--steps", "2", *more])
    return status, capsys.readouterr().out


def test_the_faithful_torch_port_passes_with_what_the_frameworks_fix_named(capsys):
    status, out = compare(capsys, KERAS_CNN, f"{PORTS}:faithful")
    headline = out.splitlines()[0]
    assert status == 0, out
    assert headline.startswith("compare: PASS — B agrees with A up to what their frameworks fix")
    assert all(title in headline for title in FIXED)
    assert "A's own model reproduces the twin of its reading" in out
    assert "B's own model reproduces the twin of its reading" in out


def test_the_port_with_two_classic_mistakes_is_diagnosed(capsys):
    status, out = compare(capsys, KERAS_CNN, f"{PORTS}:two_mistakes")
    headline = out.splitlines()[0]
    assert status == 1, out
    assert ("explained by 'same' padding split, BatchNorm momentum (besides what the frameworks fix"
            in headline)
    assert "layer 4: padding 'same' in A, (1, 1, 1, 1) in B" in out
    assert "layer 2: decay 0.99 in A, 0.010000000000000009 in B" in out


FLATTEN_PORT = '''
import torch
from torch import nn


def build():
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8, eps=1e-3, momentum=0.01),
                          nn.ReLU(), nn.MaxPool2d(2), nn.ZeroPad2d((0, 1, 0, 1)),
                          nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    return {"model": model, "loss": nn.CrossEntropyLoss(),
            "optimizer": lambda parameters: torch.optim.Adam(parameters, lr=1e-3, eps=1e-7)}
'''


def test_a_converted_state_dict_without_the_flatten_permutation_is_named(capsys, tmp_path):
    """The classic: torch's nn.Flatten on NCHW with Keras's dense kernel merely transposed."""
    import keras
    import torch

    weights = keras.saving.load_model(KERAS_CNN).get_weights()
    conv1, bias1, gamma, beta, mean, variance, conv2, bias2, dense, bias3 = weights
    state = {"0.weight": conv1.transpose(3, 2, 0, 1), "0.bias": bias1, "1.weight": gamma, "1.bias": beta,
             "1.running_mean": mean, "1.running_var": variance, "1.num_batches_tracked": np.array(0),
             "5.weight": conv2.transpose(3, 2, 0, 1), "5.bias": bias2,
             "8.weight": dense.T, "8.bias": bias3}                 # the mistake: no (H, W, C) → (C, H, W)
    torch.save({key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in state.items()},
               tmp_path / "port.pt")
    (tmp_path / "port.py").write_text(FLATTEN_PORT)
    status, out = compare(capsys, KERAS_CNN, f"{tmp_path / 'port.py'}:build@{tmp_path / 'port.pt'}")
    assert status == 1, out
    assert out.splitlines()[0].startswith("compare: FAIL — B differs from A, explained by Flatten order")
    assert "layer 6 (dense after flatten)" in out


DOUBLE_SOFTMAX = '''
from torch import nn


def build():
    return {"model": nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                                   nn.Linear(32, 10), nn.Softmax(dim=1)).double(),
            "loss": nn.CrossEntropyLoss()}
'''


def test_a_double_softmax_is_named_where_its_own_loss_parts_from_its_reading(capsys, tmp_path):
    (tmp_path / "port.py").write_text(DOUBLE_SOFTMAX)
    weights = ROOT / "examples" / "mlp_weights.safetensors"
    status, out = compare(capsys, weights, f"{tmp_path / 'port.py'}:build")
    headline = out.splitlines()[0]
    assert status == 1, out
    assert headline.startswith("compare: FAIL — B's own code computes something its reading does not, "
                               "explained by double softmax")
    assert "first loss" in headline                           # the outputs agree; the loss does not


@pytest.mark.parametrize("side", ["examples/torch_port.py:faithful", "examples/keras_cnn.py:build"])
def test_a_side_compared_with_itself_is_one_model(capsys, monkeypatch, side):
    monkeypatch.chdir(ROOT)
    status, out = compare(capsys, side, side, "--input-shape", "1,28,28")
    assert status == 0, out
    assert out.splitlines()[0].startswith("compare: PASS — A and B are one model")


KERAS_MLP = '''
import keras


def build():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64), keras.layers.LayerNormalization(),
                              keras.layers.Activation("relu"), keras.layers.Dropout(0.2),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss="categorical_crossentropy")
    return model
'''
TORCH_DEFAULTS = '''
import torch
from torch import nn


def build():
    model = nn.Sequential(nn.Linear(784, 64), nn.LayerNorm(64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10))
    return {"model": model, "loss": nn.CrossEntropyLoss(),
            "optimizer": lambda parameters: torch.optim.RMSprop(parameters, lr=1e-3)}
'''


def test_a_port_left_at_torch_defaults_names_each_default_that_differs(capsys, tmp_path):
    """A float32 Keras MLP compiled with a loss by name (built in float64 for the comparison) against
    a torch port that keeps torch's LayerNorm ε and RMSprop defaults: three mistakes, two things the
    frameworks fix."""
    (tmp_path / "keras_mlp.py").write_text(KERAS_MLP)
    (tmp_path / "torch_mlp.py").write_text(TORCH_DEFAULTS)
    status, out = compare(capsys, f"{tmp_path / 'keras_mlp.py'}:build", f"{tmp_path / 'torch_mlp.py'}:build")
    headline = out.splitlines()[0]
    assert status == 1, out
    assert "A's own model reproduces the twin of its reading" in out
    assert headline.startswith("compare: FAIL — B differs from A, explained by ")
    mistakes = headline.split("explained by ")[1].split(" (besides")[0].split(", ")
    assert sorted(mistakes) == ["LayerNorm ε", "RMSprop decay", "optimizer ε"]
    assert ("(besides what the frameworks fix: optimizer convention, hyperparameters held in float32)"
            in headline)
    assert "found: B: initializer defaults — layer 1 W: A's drawn as he_normal or glorot_uniform" in out
    assert "B's as torch_default" in out                    # each side's own fresh draw, before the copy


UNCOMPILED = '''
import keras
import torch
from torch import nn


def keras_model():
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((784,)), keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])


def keras_logits():
    """Uncompiled, its last layer linear: the port's CrossEntropyLoss makes it return logits."""
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((784,)), keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(10)])


def torch_port():
    return {"model": nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)),
            "loss": nn.CrossEntropyLoss(), "optimizer": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)}
'''


@pytest.mark.parametrize("order, keras_side", [("keras-first", "keras_model"), ("torch-first", "keras_model"),
                                               ("keras-first", "keras_logits")])
def test_an_uncompiled_keras_model_trains_with_the_torch_sides_loss_and_optimizer(capsys, tmp_path, order,
                                                                                   keras_side):
    (tmp_path / "sides.py").write_text(UNCOMPILED)
    sides = [f"{tmp_path / 'sides.py'}:{keras_side}", f"{tmp_path / 'sides.py'}:torch_port"]
    status, out = compare(capsys, *(sides if order == "keras-first" else sides[::-1]))
    assert status == 0, out
    assert "optimizer taken from the other side, in keras's convention: momentum lr 0.05" in out
    assert "A's own model reproduces" in out and "B's own model reproduces" in out


FRESH_KERAS = '''
import keras


def build():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.CategoricalCrossentropy())
    return model
'''


def test_a_freshly_built_keras_model_runs_with_the_weight_files_weights(capsys, tmp_path):
    (tmp_path / "fresh.py").write_text(FRESH_KERAS)
    weights = ROOT / "examples" / "mlp_weights.safetensors"
    status, out = compare(capsys, weights, f"{tmp_path / 'fresh.py'}:build")
    assert status == 0, out
    assert "its weights read as a fresh draw" in out and "weights taken from the other side" in out
    assert out.splitlines()[0].startswith("compare: PASS")


def assert_verdict(capsys, tmp_path, source: str, a: str, b: str, status: int, headline: str) -> None:
    """``compare`` of factories ``a`` and ``b`` of ``source``: its exit status and headline, each side's
    own model reproducing the twin of its reading."""
    (tmp_path / "sides.py").write_text(source)
    got, out = compare(capsys, f"{tmp_path / 'sides.py'}:{a}", f"{tmp_path / 'sides.py'}:{b}")
    assert got == status, out
    assert out.splitlines()[0].startswith(f"compare: {headline}"), out
    assert "A's own model reproduces" in out and "B's own model reproduces" in out


DECAYED = '''
import keras
import torch
from torch import nn


def keras_model(optimizer):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy())
    return model


def keras_adamw():
    return keras_model(keras.optimizers.AdamW(1e-3, weight_decay=0.05, epsilon=1e-7))


def keras_sgd():
    return keras_model(keras.optimizers.SGD(0.05, momentum=0.9, weight_decay=0.05))


def port(optimizer):
    return {"model": nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)),
            "loss": nn.CrossEntropyLoss(), "optimizer": optimizer}


def torch_adamw():
    return port(lambda p: torch.optim.AdamW(p, lr=1e-3, eps=1e-7, weight_decay=0.05))


def torch_adam():
    return port(lambda p: torch.optim.Adam(p, lr=1e-3, eps=1e-7, weight_decay=0.05))


def torch_adamw_default():
    return port(lambda p: torch.optim.AdamW(p, lr=1e-3, eps=1e-7))


def torch_sgd():
    return port(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.05))
'''


# each compare imports both frameworks and runs both sides (~5 s): the two verdicts that turn on
# the fixed rule run by default, the rest with -m slow
SLOW = pytest.mark.slow


@pytest.mark.parametrize("a, b, status, headline", [
    pytest.param("keras_adamw", "torch_adamw", 0, "PASS — B agrees with A up to what their frameworks fix",
                 marks=SLOW),
    ("keras_adamw", "torch_adam", 1, "FAIL — B differs from A, explained by weight decay coupled vs "
                                     "decoupled (besides"),
    pytest.param("torch_adam", "keras_adamw", 1, "FAIL — B differs from A, explained by weight decay "
                 "coupled vs decoupled (besides", marks=SLOW),
    pytest.param("keras_adamw", "torch_adamw_default", 1,
                 "FAIL — B differs from A, explained by weight decay λ (besides", marks=SLOW),
    # Keras's SGD decays decoupled only, torch's SGD coupled only: with momentum no port removes it
    ("keras_sgd", "torch_sgd", 0, "PASS — B agrees with A up to what their frameworks fix, which no port "
                                  "can remove: weight decay coupled vs decoupled"),
], ids=["adamw-both", "adamw-as-coupled-adam", "coupled-adam-as-adamw", "adamw-default-lambda",
        "sgd-momentum-both"])
def test_weight_decay_ports_are_judged_by_what_each_framework_can_express(capsys, tmp_path, a, b, status,
                                                                          headline):
    assert_verdict(capsys, tmp_path, DECAYED, a, b, status, headline)


GELU = '''
import keras
import torch
from torch import nn


def keras_gelu():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(32, activation="gelu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.CategoricalCrossentropy())
    return model


def keras_ops_gelu():
    """keras.ops.gelu is the tanh form; it saves as "gelu", which reloads as the exact one."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(32),
                              keras.layers.Activation(keras.ops.gelu),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.CategoricalCrossentropy())
    return model


def port(gelu):
    return {"model": nn.Sequential(nn.Linear(784, 32), gelu, nn.Linear(32, 10)),
            "loss": nn.CrossEntropyLoss(), "optimizer": lambda p: torch.optim.SGD(p, lr=0.05)}


def torch_exact():
    return port(nn.GELU())


def torch_tanh():
    return port(nn.GELU(approximate="tanh"))
'''


@pytest.mark.parametrize("a, b, status, headline", [
    # Keras's float64 GELU rounds 1/√2 to float32: its own model is checked against its own twin
    # (rounding alike), so the port of the exact form passes
    ("keras_gelu", "torch_exact", 0, "PASS — B agrees with A up to what their frameworks fix"),
    pytest.param("keras_gelu", "torch_tanh", 1, "FAIL — B differs from A, explained by GELU exact vs tanh "
                 "form", marks=SLOW),
    # keras.ops.gelu computes the tanh form though its config says "gelu": read as what it computes
    ("keras_ops_gelu", "torch_tanh", 0, "PASS — B agrees with A up to what their frameworks fix"),
    pytest.param("keras_ops_gelu", "torch_exact", 1, "FAIL — B differs from A, explained by GELU exact vs "
                 "tanh form", marks=SLOW),
], ids=["keras-gelu-as-torch-exact", "keras-gelu-as-torch-tanh", "keras-ops-gelu-as-torch-tanh",
        "keras-ops-gelu-as-torch-exact"])
def test_a_gelu_port_is_judged_by_its_form(capsys, tmp_path, a, b, status, headline):
    assert_verdict(capsys, tmp_path, GELU, a, b, status, headline)


SATURATED = '''
import torch
from torch import nn


def net(shift):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
    with torch.no_grad():
        model[2].bias.fill_(shift)
    return model


def probabilities(shift=40.0):
    return {"model": net(shift), "loss": nn.BCELoss(), "optimizer": lambda p: torch.optim.SGD(p, lr=0.1)}


def logits():
    return {"model": net(40.0)[:3], "loss": nn.BCEWithLogitsLoss(),
            "optimizer": lambda p: torch.optim.SGD(p, lr=0.1)}


def unsaturated():
    return probabilities(0.0)
'''


def test_bce_loss_on_saturated_probabilities_is_named_as_clipping(capsys, tmp_path):
    """torch's BCELoss divides its backward by max(p(1 − p), 1e-12) and clamps its log at −100: with
    every output pushed past |Z| = 40 the side's own loss parts from its reading, and compare says
    why; the same module unsaturated is one model with its BCEWithLogitsLoss port."""
    (tmp_path / "bce.py").write_text(SATURATED)
    status, out = compare(capsys, f"{tmp_path / 'bce.py'}:probabilities", f"{tmp_path / 'bce.py'}:logits")
    assert status == 1, out
    assert out.splitlines()[0].startswith("compare: FAIL — A's own code computes something its reading "
                                          "does not, explained by BCE probability clipping"), out
    assert "found: A: BCE probability clipping — 8 of 8 outputs saturate" in out
    status, out = compare(capsys, f"{tmp_path / 'bce.py'}:unsaturated", f"{tmp_path / 'bce.py'}:logits")
    assert status == 0 and "BCE probability clipping" not in out, out


SHORTER = '''
import torch
from torch import nn


def build():
    return {"model": nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                   nn.Linear(8 * 28 * 28, 10)),
            "loss": nn.CrossEntropyLoss(), "optimizer": lambda p: torch.optim.SGD(p, lr=0.1)}
'''


def test_different_models_are_named_with_a_and_b_as_given(capsys, tmp_path):
    """B brings no weights (it would take A's): the refusal still calls A what the user gave as A."""
    (tmp_path / "shorter.py").write_text(SHORTER)
    status = main(["compare", str(KERAS_CNN), f"{tmp_path / 'shorter.py'}:build", "--batch", "4"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "A has 6 layers (1×28×28 → conv2d(8, 3×3, same, identity) → batch_norm" in err
    assert "B has 3 (1×28×28 → conv2d(8, 3×3, same, relu) → flatten" in err
