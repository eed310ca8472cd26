"""Each catalog model's spec against the description ``backprop-parity models`` prints beside it
(issue 18, part 4): the description is parsed here, on its own, into the settings it states, and
every setting it leaves unsaid is the project's MNIST training default as the catalog's docstring
states it (ReLU/softmax + CCE, torch-convention Adam at η = 0.001, batch 64, one epoch, float64,
seed 0). Every backend builds the same spec, so parity cannot see a spec that contradicts its own
description (a learning rate, a batch, a layer width or an initializer changed in one place only).
"""

from __future__ import annotations

import re

import pytest

from reports.cli.main import main
from scratch import catalog
from scratch.layer_specs import (
    Conv2DSpec,
    DenseSpec,
    DropoutSpec,
    EmbeddingSpec,
    FlattenSpec,
    GRUSpec,
    LSTMSpec,
    MaxPool2DSpec,
    PReLUSpec,
    SequencePoolSpec,
)
from scratch.spec import OptimizerSpec

DOCUMENTED_DEFAULT = {"activations": ("relu", "softmax"), "loss": "cce", "optimizer": ("adam", 0.001),
                      "convention": "torch", "batch": 64, "steps": 1, "dtype": "float64", "seed": 0}
SEED_002_NET = (784, 64, 32, 10)             # the catalog docstring's table: seed 002's net
INITS = {"He-normal": "he_normal", "LeCun-normal": "lecun_normal", "uniform(−0.5, 0.5)": "uniform_half",
         "0.01·N(0, 1) W": "small_normal", "Glorot-uniform": "glorot_uniform"}
OPTIMIZERS = {"Adam": "adam", "SGD": "sgd", "GD": "sgd"}
PRELU_SLOPES = {"unit": "per_channel", "element": "per_element", "layer": "shared"}   # "PReLU per unit"


def printed_descriptions(capsys) -> dict[str, str]:
    """name → its description as ``backprop-parity models`` prints it, the wrapped lines rejoined."""
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    out, name = {}, None
    for line in lines:
        if not line.startswith("    "):
            name = line.split()[0]
            out[name] = ""
            continue
        text = line.strip()
        out[name] += text if out[name].endswith("-") or not out[name] else " " + text
    return out


def _first(pattern: str, text: str):
    match = re.search(pattern, text)
    return match.groups() if match else None


def stated(text: str, known: dict[str, dict] | None = None) -> dict:
    """The settings ``text`` states, parsed from its words alone."""
    claims = {}
    if (net := _first(r"\[(\d+(?:, \d+)+)\]", text)) is not None:
        claims["net"] = tuple(int(n) for n in net[0].split(", "))
    elif "seed 002's net" in text:
        claims["net"] = SEED_002_NET
    if (acts := _first(r"\b(ReLU|tanh)/(softmax|sigmoid)\b", text)) is not None:
        claims["activations"] = (acts[0].lower(), acts[1])
    if (loss := _first(r"\b(CCE|BCE)\b", text)) is not None:
        claims["loss"] = loss[0].lower()
    found = sorted((text.index(phrase), init) for phrase, init in INITS.items() if phrase in text)
    if found:
        claims["init"] = found[0][1]
    if (opt := _first(r"\b(Adam|SGD|GD) η = ([\d.]+)", text)) is not None:
        claims["optimizer"] = (OPTIMIZERS[opt[0]], float(opt[1]))
    if "full-batch" in text:
        claims["batch"] = None
    elif (batch := _first(r"\bbatch (\d+)", text)) is not None:
        claims["batch"] = int(batch[0])
    if (steps := _first(r"\b(\d+) (?:steps|epochs?)\b", text)) is not None:
        claims["steps"] = int(steps[0])
    if (dtype := _first(r"\b(float32|float64)\b", text)) is not None:
        claims["dtype"] = dtype[0]
    if (sequence := _first(r"(\d+)×(\d+) \(.*?\) → (.*?), CCE", text)) is not None:     # (T, n) sequences
        claims["inputs"] = (int(sequence[0]), int(sequence[1]))
        claims["layers"] = _cnn_layers(sequence[2], text)
    elif (tokens := _first(r"(\d+) token ids \(.*?\) → (.*?), CCE", text)) is not None:
        claims["inputs"] = (int(tokens[0]),)
        claims["layers"] = _cnn_layers(tokens[1], text)
    elif (cnn := _first(r"(\d+)×(\d+)×(\d+) → (.*?), CCE", text)) is not None:
        claims["inputs"] = tuple(int(n) for n in cnn[:3])
        claims["layers"] = _cnn_layers(cnn[3], text)
    elif (stack := _first(r"\b(\d+) → (.*?), CCE", text)) is not None:      # a dense stack, layer by layer
        claims["inputs"] = (int(stack[0]),)
        claims["layers"] = _cnn_layers(stack[1], text)
    if (maps := _first(r"^(\w+)'s layout with (\d+) and (\d+) feature maps", text)) is not None:
        base = known[maps[0]]                 # "same dropout, Adam, init, float32": the rest as there
        filters = iter(int(n) for n in maps[1:])
        layers = tuple(Conv2DSpec(next(filters), layer.kernel_size, padding=layer.padding,
                                  activation=layer.activation) if isinstance(layer, Conv2DSpec) else layer
                       for layer in base["layers"])
        claims = {**base, "layers": layers, **{k: v for k, v in claims.items() if k in ("batch", "steps")}}
    return claims


def _cnn_layers(stack: str, text: str) -> tuple:
    """``conv 6@5×5 same → max-pool 2 → … → dense 120 → 84 → 10 softmax, ReLU, dropout 0.25 after
    each hidden dense layer`` (or ``dense 64 → PReLU per unit (α₀ = 0.25) → …, linear dense
    layers``, the slope α at z = 0 unless it says 0) as layer specs."""
    hidden = "relu" if ", ReLU," in text else "identity" if "linear dense layers" in text else None
    at_zero = "zero" if "slope 0 at z = 0" in text else "alpha"
    rate = _first(r"dropout ([\d.]+) after each hidden dense layer", text)
    layers, dense = [], False
    for part in stack.split(" → "):
        if (conv := _first(r"^conv (\d+)@(\d+)×(\d+)( same)?$", part)) is not None:
            layers.append(Conv2DSpec(int(conv[0]), (int(conv[1]), int(conv[2])),
                                     padding="same" if conv[3] else "valid", activation=hidden))
        elif (prelu := _first(r"^PReLU per (\w+) \(α₀ = ([\d.]+)\)$", part)) is not None:
            layers.append(PReLUSpec(PRELU_SLOPES[prelu[0]], float(prelu[1]), at_zero))
        elif (pool := _first(r"^max-pool (\d+)$", part)) is not None:
            layers.append(MaxPool2DSpec(int(pool[0])))
        elif (embedding := _first(r"^embedding (\d+)→(\d+)( \(Keras's init\))?$", part)) is not None:
            init = "keras" if embedding[2] else "torch"
            layers.append(EmbeddingSpec(int(embedding[0]), int(embedding[1]), init))
        elif (recurrent := _first(r"^(LSTM|GRU) (\d+) \((.*)\)$", part)) is not None:
            init = "keras" if "Keras's init" in recurrent[2] else "torch"
            if recurrent[0] == "LSTM":
                biases = "one" if "one bias" in recurrent[2] else "two"
                layers.append(LSTMSpec(int(recurrent[1]), biases=biases, init=init))
            else:
                reset_after = "reset after" in recurrent[2]
                layers.append(GRUSpec(int(recurrent[1]), reset_after=reset_after, init=init))
        elif part == "last state":
            layers[-1] = type(layers[-1])(**{**vars(layers[-1]), "return_sequences": False})
        elif (order := _first(r"^flatten \(channels (first|last)\)", part)) is not None:
            layers.append(FlattenSpec(f"channels_{order[0]}"))
        elif (units := _first(r"^(?:dense )?(\d+)( softmax)?(?:,.*)?$", part)) is not None:
            dense = True
            if units[1]:
                layers.append(DenseSpec(int(units[0]), "softmax"))
            else:
                layers += [DenseSpec(int(units[0]), hidden)] + ([DropoutSpec(float(rate[0]))] if rate else [])
        else:
            raise AssertionError(f"cannot read {part!r} in {stack!r}")
    assert dense, stack
    return tuple(layers)


def _all_stated(capsys) -> dict[str, dict]:
    known = {}
    for name, text in printed_descriptions(capsys).items():
        known[name] = stated(text, known)
    return known


def test_every_catalog_model_is_printed_with_a_description(capsys):
    assert list(printed_descriptions(capsys)) == list(catalog.MODELS)


def check_against(spec, claims: dict, name: str) -> None:
    """Every setting of ``spec`` is what ``claims`` states, or the documented default."""
    assert "init" in claims and ("net" in claims or "layers" in claims), (name, claims)
    expected = {**DOCUMENTED_DEFAULT, **claims}
    if "layers" in expected:
        assert spec.input_shape == expected["inputs"], name
        assert spec.layers == expected["layers"], (name, spec.layers)
    else:
        assert spec.layer_sizes == expected["net"], name
        assert (spec.hidden_activation, spec.output_activation) == expected["activations"], name
    assert spec.loss == expected["loss"], name
    assert spec.init == expected["init"], name
    optimizer, learning_rate = expected["optimizer"]
    want = (OptimizerSpec("sgd", learning_rate=learning_rate) if optimizer == "sgd" else
            OptimizerSpec.framework_default(optimizer, expected["convention"], learning_rate=learning_rate))
    assert spec.optimizer == want, (name, spec.optimizer)
    assert spec.batch_size == expected["batch"], name
    assert spec.epochs == expected["steps"], name             # a full batch: one step per epoch
    assert (spec.dtype, spec.seed) == (expected["dtype"], expected["seed"]), name


@pytest.mark.parametrize("name", list(catalog.MODELS))
def test_the_spec_is_what_its_printed_description_says(name, capsys):
    check_against(catalog.spec(name), _all_stated(capsys)[name], name)


WRONG = {   # (model, a spec that contradicts its description in one setting)
    "second conv 8 maps": ("lenet5", lambda s: s.replace(
        layers=(*s.layers[:2], Conv2DSpec(8, 5), *s.layers[3:]))),
    "valid first conv": ("lenet5", lambda s: s.replace(layers=(Conv2DSpec(6, 5), *s.layers[1:]))),
    "dropout 0.5": ("mnist-cnn", lambda s: s.replace(layers=tuple(
        DropoutSpec(0.5) if isinstance(layer, DropoutSpec) else layer for layer in s.layers))),
    "learning rate": ("seed-002", lambda s: s.replace(optimizer=OptimizerSpec("sgd", learning_rate=0.01))),
    "keras convention": ("seed-003", lambda s: s.replace(
        optimizer=OptimizerSpec.framework_default("adam", "keras", learning_rate=0.001))),
    "batch": ("mnist-default", lambda s: s.replace(batch_size=32)),
    "steps": ("xor-default", lambda s: s.replace(epochs=30)),
    "init": ("seed-000", lambda s: s.replace(init="lecun_normal")),
    "net": ("spirals-default", lambda s: s.replace(layer_sizes=(2, 32, 2))),
    "dtype": ("mnist-cnn", lambda s: s.replace(dtype="float64")),
    "prelu start slope": ("mnist-prelu", lambda s: s.replace(layers=tuple(
        PReLUSpec(layer.slopes, 0.1) if isinstance(layer, PReLUSpec) else layer for layer in s.layers))),
    "prelu slope at zero": ("mnist-prelu", lambda s: s.replace(layers=tuple(
        PReLUSpec(layer.slopes, layer.alpha_init, "zero") if isinstance(layer, PReLUSpec) else layer
        for layer in s.layers))),
    "lstm two biases": ("mnist-lstm", lambda s: s.replace(
        layers=(LSTMSpec(128, return_sequences=False, init="keras"), *s.layers[1:]))),
    "lstm torch init": ("mnist-lstm", lambda s: s.replace(
        layers=(LSTMSpec(128, return_sequences=False, biases="one"), *s.layers[1:]))),
    "gru reset before": ("mnist-gru", lambda s: s.replace(
        layers=(GRUSpec(128, reset_after=False, return_sequences=False, init="keras"), *s.layers[1:]))),
    "lstm every state": ("brackets-lstm", lambda s: s.replace(
        layers=(s.layers[0], LSTMSpec(32, biases="one", init="keras"), SequencePoolSpec(), *s.layers[2:]))),
    "embedding width": ("brackets-lstm", lambda s: s.replace(
        layers=(EmbeddingSpec(4, 16, init="keras"), *s.layers[1:]))),
    "prelu after relu": ("mnist-prelu", lambda s: s.replace(layers=tuple(
        DenseSpec(layer.units) if isinstance(layer, DenseSpec) and layer.activation == "identity" else layer
        for layer in s.layers))),
}


@pytest.mark.parametrize("case", WRONG)
def test_a_spec_that_contradicts_its_description_is_caught(case, capsys):
    name, spoil = WRONG[case]
    with pytest.raises(AssertionError):
        check_against(spoil(catalog.spec(name)), _all_stated(capsys)[name], name)
