"""The Keras side of ``compare`` (``ports.keras_port``): a saved model reads into the spec, and the
engine built from the reading reproduces the user's own model — outputs in both modes, loss,
every gradient and two optimizer steps — at the float64 floor; what the spec cannot express is
refused with one PortError naming it."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from judge.parity import relative_error  # noqa: E402
from judge.tolerances import tolerance  # noqa: E402
from ports.keras_port import keras_side, read_keras  # noqa: E402
from ports.reading import PortError  # noqa: E402
from ports.sides import check_descriptor, read_side  # noqa: E402
from scratch.layer_specs import (  # noqa: E402
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    LayerNormSpec,
    MaxPool2DSpec,
    PReLUSpec,
)
from scratch.model import Network  # noqa: E402
from scratch.optimizers import make_optimizer  # noqa: E402

LAMBDA = 2.0 ** -7            # Keras's L2 factor, exact in float32: the spec's l2 is 2λ


@contextlib.contextmanager
def keras_dtype(dtype: str):
    """Layers, losses and optimizers built in ``dtype``: floatx and the global dtype policy (Keras
    caches the policy on first use, so floatx alone does not reach new layers), restored after."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


@pytest.fixture
def float64():
    with keras_dtype("float64"):
        yield


def randomize(model, seed: int = 0):
    """Every variable drawn at random (a positive moving variance), so nothing is a default."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        value = (rng.uniform(0.5, 1.5, shape) if variable.path.endswith("moving_variance")
                 else rng.normal(0.0, 0.5, shape))
        variable.assign(value)


def mlp():
    l2 = keras.regularizers.L2(LAMBDA)
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, kernel_regularizer=l2),
        keras.layers.LayerNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.Dropout(0.25),
        keras.layers.Dense(6, kernel_regularizer=l2),
        keras.layers.LeakyReLU(negative_slope=0.125),
        keras.layers.PReLU(),
        keras.layers.Dense(3, kernel_regularizer=l2),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    return model


def cnn():
    inputs = keras.Input((8, 8, 2))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    a = keras.layers.BatchNormalization(momentum=0.9)(a)
    a = keras.layers.Activation("tanh")(a)
    a = keras.layers.MaxPooling2D(2)(a)
    a = keras.layers.Conv2D(3, 3, padding="valid", activation="relu")(a)
    a = keras.layers.Flatten()(a)
    outputs = keras.layers.Dense(3, activation="softmax")(a)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.CategoricalCrossentropy())
    return model


def cnn_adamw():
    """The CNN compiled with AdamW: weight decay, decoupled, on every trainable variable."""
    model = cnn()
    model.compile(optimizer=keras.optimizers.AdamW(0.01, weight_decay=0.05),
                  loss=keras.losses.CategoricalCrossentropy())
    return model


def saved(build, tmp_path):
    """``build()`` with random variables, saved and read back through :func:`keras_side` under
    Keras's default float32 (which reloads it under float64, its weights' dtype)."""
    model = build()
    randomize(model)
    path = tmp_path / f"{build.__name__}.keras"
    model.save(path)
    with keras_dtype("float32"), warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # the unbuilt optimizer's variables
        return keras_side(str(path))


def test_mlp_reads_into_the_spec(float64, tmp_path):
    reading, _ = saved(mlp, tmp_path)
    spec = reading.spec
    assert spec.layers == (DenseSpec(8, "identity"), LayerNormSpec(1e-3, "relu"), DropoutSpec(0.25),
                           DenseSpec(6, "leaky_relu"), PReLUSpec("per_element", 0.0, "zero"),
                           DenseSpec(3, "softmax"))
    assert (spec.inputs, spec.loss, spec.dtype, spec.l2, spec.leaky_relu_slope) == (6, "cce", "float64",
                                                                                   2 * LAMBDA, 0.125)
    opt = spec.optimizer
    assert (opt.name, opt.convention, opt.momentum) == ("momentum", "keras", 0.9)
    assert opt.learning_rate == 0.05                         # a float64 variable's value
    assert reading.given == {"weights", "loss", "optimizer"} and reading.findings == ()
    assert reading.tensors[0]["W"].shape == (8, 6) and reading.statistics is None


def test_cnn_reads_into_the_spec(float64, tmp_path):
    reading, _ = saved(cnn, tmp_path)
    spec = reading.spec
    assert spec.inputs == (2, 8, 8)
    assert spec.layers == (Conv2DSpec(4, 3, 1, "same", 1, "relu"), BatchNormSpec(0.9, 1e-3, "biased", "tanh"),
                           MaxPool2DSpec(2), Conv2DSpec(3, 3, 1, "valid", 1, "relu"),
                           FlattenSpec("channels_last"), DenseSpec(3, "softmax"))
    assert (spec.loss, spec.l2, spec.optimizer.name, spec.optimizer.epsilon) == ("cce", 0.0, "adam", 1e-7)
    assert reading.tensors[0]["W"].shape == (4, 2, 3, 3)
    assert [s.shape for s in reading.statistics[0]] == [(4,), (4,)]
    assert any("floatx float64" in note for note in reading.notes)


def within(actual, desired, kind: str = "gradient") -> None:
    error = relative_error(actual, desired)
    assert error <= tolerance("float64", kind), f"relative error {error:.3g}"


@pytest.mark.parametrize("build", [mlp, cnn, cnn_adamw], ids=["mlp", "cnn", "cnn-adamw"])
def test_engine_of_the_reading_reproduces_the_model(float64, tmp_path, build):
    reading, real = saved(build, tmp_path)
    spec = reading.spec
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, *spec.input_shape))
    y = np.eye(3)[rng.integers(0, 3, len(x))]
    net = Network(spec, tensors=reading.tensors, statistics=reading.statistics)
    within(real.outputs(x, training=False), net.inference_outputs(x)[1], "forward")
    within(real.outputs(x, training=True), net.forward(x, training=True).output, "forward")
    assert all(np.array_equal(a, b) for a, b in zip(np.ravel(real.statistics()),
                                                    np.ravel(reading.statistics or []), strict=True))
    loss, gradients = real.loss_and_gradients(x, y)
    expected_loss, expected = net.gradients(x, y)
    within(loss, expected_loss, "forward")
    for gradient, wanted in zip(gradients, expected, strict=True):
        within(gradient, wanted)
    optimizer = make_optimizer(spec.optimizer)
    for _ in range(2):
        tensors, statistics = real.step(x, y)
        net.train_step(x, y, optimizer)
    for held, wanted in zip(tensors, net.tensors, strict=True):
        for name in held:
            within(held[name], wanted[name], "parameters")
    for pair, wanted in zip(statistics, net.statistics, strict=True):
        for value, expected_value in zip(pair, wanted, strict=True):
            within(value, expected_value, "parameters")


def test_double_softmax_is_a_finding_and_keras_takes_the_logits(float64):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    randomize(model)
    model.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    reading, real = read_keras(model, source="double")
    assert [(f.cause, f.where) for f in reading.findings] == [("double_softmax", "layer 1")]
    assert reading.spec.layers[-1].activation == "softmax" and reading.spec.loss == "cce"
    x = np.random.default_rng(2).normal(size=(5, 4))
    y = np.eye(3)[[0, 1, 2, 0, 1]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # Keras's own from_logits warning
        loss, _ = real.loss_and_gradients(x, y)
    within(loss, Network(reading.spec, tensors=reading.tensors).gradients(x, y)[0], "forward")


def test_unsupported_layers_are_named_in_one_error(float64):
    model = keras.Sequential([keras.Input((4, 6)), keras.layers.GRU(3, return_sequences=True),
                              keras.layers.LSTM(3), keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(PortError, match=r"GRU 'gru'.*LSTM 'lstm'"):
        read_keras(model, source="rnn")


@pytest.mark.parametrize("layers, match", [
    (lambda: [keras.layers.Conv2D(4, 3, groups=2)], "groups=2"),
    (lambda: [keras.layers.Conv2D(2, 3), keras.layers.MaxPooling2D(2), keras.layers.ReLU()],
     "activation layer must follow"),
    (lambda: [keras.layers.Conv2D(2, 3, bias_regularizer=keras.regularizers.L2(0.1))], "bias_regularizer"),
    (lambda: [keras.layers.Conv2D(2, 3), keras.layers.Permute((3, 2, 1))], r"Permute\(3, 2, 1\)"),
    (lambda: [keras.layers.Conv2D(2, 3), keras.layers.Permute((3, 1, 2)), keras.layers.MaxPooling2D(2)],
     "a Permute must be followed directly by a Flatten"),
], ids=["grouped-conv", "activation-after-pooling", "bias-regularizer", "permute-other-dims",
        "permute-not-before-flatten"])
def test_options_without_a_spec_equivalent_are_refused(float64, layers, match):
    model = keras.Sequential([keras.Input((8, 8, 2)), *layers(), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(PortError, match=match):
        read_keras(model, source="refused")


def test_branching_model_is_refused(float64):
    inputs = keras.Input((4,))
    merged = keras.layers.Add()([keras.layers.Dense(3)(inputs), keras.layers.Dense(3)(inputs)])
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(merged))
    with pytest.raises(PortError, match="merge"):
        read_keras(model, source="branch")


@pytest.mark.parametrize("optimizer, decay", [
    (lambda: keras.optimizers.SGD(0.1, weight_decay=0.01), 0.01),
    (lambda: keras.optimizers.Adam(weight_decay=0.02), 0.02),
    (lambda: keras.optimizers.AdamW(), 0.004),                      # AdamW's own default λ
], ids=["sgd", "adam", "adamw-default"])
def test_weight_decay_reads_decoupled(float64, optimizer, decay):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=optimizer(), loss="categorical_crossentropy")
    reading, _ = read_keras(model, source="decay")
    assert (reading.spec.optimizer.weight_decay, reading.spec.optimizer.decoupled_decay) == (decay, True)


def test_rmsprop_momentum_is_read(float64):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.RMSprop(momentum=0.5), loss="categorical_crossentropy")
    reading, _ = read_keras(model, source="rmsprop")
    assert (reading.spec.optimizer.name, reading.spec.optimizer.momentum) == ("rmsprop", 0.5)


def test_variables_excluded_from_weight_decay_are_refused(float64):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    optimizer = keras.optimizers.AdamW()
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    with pytest.raises(PortError, match="excluded from weight decay"):
        read_keras(model, source="decay")


def test_load_refuses_a_wrong_shape(float64):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    reading, real = read_keras(model, source="shape")
    assert "loss" not in reading.given and any("not compiled" in note for note in reading.notes)
    tensors = [dict(held) for held in reading.tensors]
    tensors[0]["W"] = tensors[0]["W"].T
    with pytest.raises(PortError, match=r"W1 must be \(3, 4\)"):
        real.load(tensors, None)
    real.load(reading.tensors, None)                     # the right shapes load


def test_keras_side_refuses_bad_files_and_runs_a_factory(float64, tmp_path):
    with pytest.raises(PortError, match="no such file"):
        keras_side(str(tmp_path / "missing.keras"))
    (tmp_path / "text.keras").write_text("not a zip")
    with pytest.raises(PortError, match="not a .keras file"):
        keras_side(str(tmp_path / "text.keras"))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda a: 2 * a),
                              keras.layers.Dense(2, activation="softmax")])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(PortError, match="safe_mode=True"):
        keras_side(str(tmp_path / "lambda.keras"))
    (tmp_path / "factory.py").write_text(
        "import keras\n\n\ndef build():\n"
        "    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation='sigmoid')])\n")
    reading, _ = read_side(check_descriptor(f"{tmp_path / 'factory.py'}:build", "A"))
    assert reading.spec.loss == "bce" and reading.given == {"weights"}


def test_gelu_reads_exact_and_its_own_model_matches_its_twin(float64):
    """Keras's 'gelu' is the exact form. In float64 TensorFlow rounds its constant 1/√2 to float32,
    so the model is ~1e-9 off the engine: the reading says so, and its twin (Keras, rounding alike)
    reproduces it at the float64 bound."""
    from ports.twin_model import twin_for
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="gelu"),
                              keras.layers.Dense(3, activation="softmax")])
    randomize(model)
    reading, real = read_keras(model, source="gelu")
    assert [layer.activation for layer in reading.spec.numbered_layers] == ["gelu", "softmax"]
    assert any("casts its constant (1/√2, or 0.044715 in the tanh form) to float32" in note
               for note in reading.notes)
    twin, note = twin_for(reading)
    assert note == ""
    x = np.random.default_rng(3).normal(size=(8, 5)) * 2
    within(real.outputs(x, training=False), twin.outputs(x, training=False), "forward")
    engine = Network(reading.spec, tensors=reading.tensors).inference_outputs(x)[1]
    assert relative_error(real.outputs(x, training=False), engine) > tolerance("float64", "forward")


def test_permute_before_flatten_reads_as_a_channels_first_flatten(float64):
    """Permute((3, 1, 2)) then Flatten: torch's flatten order, as a Keras port of a torch model
    writes it; the engine of the reading reproduces the model."""
    model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, activation="tanh"),
                              keras.layers.Permute((3, 1, 2)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    randomize(model)
    reading, real = read_keras(model, source="permuted")
    assert reading.spec.describe_stack() == ("2×6×6 → conv2d(3, 3×3, valid, tanh) → "
                                             "flatten(channels_first) → dense(3, softmax)")
    x = np.random.default_rng(4).normal(size=(5, 2, 6, 6))
    net = Network(reading.spec, tensors=reading.tensors)
    within(real.outputs(x, training=False), net.inference_outputs(x)[1], "forward")


@pytest.mark.parametrize("function, read", [("relu", "relu"), ("tanh", "tanh"), ("gelu", "gelu_tanh")])
def test_a_keras_ops_activation_reads_as_what_it_computes(float64, function, read):
    """keras.ops.gelu saves as "gelu" (the exact form when reloaded) but computes the tanh form."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5),
                              keras.layers.Activation(getattr(keras.ops, function)),
                              keras.layers.Dense(2, activation="softmax")])
    reading, _ = read_keras(model, source="ops")
    assert reading.spec.numbered_layers[0].activation == read


def test_an_activation_whose_saved_name_reloads_as_another_function_is_refused(float64):
    def relu(x):                                            # saves as "relu": keras.activations.relu
        return keras.ops.maximum(x, 0.0) * 2.0

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation=relu),
                              keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(PortError, match="saves as 'relu', which is keras.activations.relu, another function"):
        read_keras(model, source="custom")
