"""The recurrent layers of the engine (``scratch.layers.recurrent``) against the frameworks' own
layers, layer alone, float64, through the one layout conversion (``twins.recurrent_layouts``):
torch's ``nn.RNN`` (tanh, ReLU), ``nn.LSTM`` and ``nn.GRU``, Keras's ``SimpleRNN``, ``LSTM`` and
``GRU`` in both reset forms, and JAX's ``lax.scan`` over each cell (``twins.jax_recurrent``) —
every step's output, every parameter's gradient, dX and the initial state's gradient within
float64's 1e-13. And the facts issue 22 builds on, each confirmed on the
pinned versions: the tensors' shapes and gate orders, torch's two biases and Keras's one (the
GRU's (2, 3H)), each framework's initial values, what an embedding does with a token out of range.
"""

from __future__ import annotations

import numpy as np
import pytest

from judge.parity import relative_error
from scratch.layers.recurrent import GRU, LSTM, SimpleRNN
from twins.recurrent_layouts import from_keras, from_torch, to_keras, to_torch

TOLERANCE = 1e-13
M, T, N, H = 3, 5, 4, 3


def drawn(kind: str, two_biases: bool, seed: int = 0) -> dict:
    """Random tensors in the engine's layout, every gate block drawn separately."""
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    rng = np.random.default_rng(seed)
    tensors = {"weight_ih": rng.normal(0, 0.5, (gates * H, N)),
               "weight_hh": rng.normal(0, 0.5, (gates * H, H))}
    if two_biases:
        tensors.update(bias_ih=rng.normal(0, 0.3, gates * H), bias_hh=rng.normal(0, 0.3, gates * H))
    else:
        tensors["bias"] = rng.normal(0, 0.3, gates * H)
    return tensors


def engine_layer(kind: str, tensors: dict, options: dict):
    layer = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}[kind]
    biases = (tensors["bias_ih"], tensors["bias_hh"]) if "bias_ih" in tensors else (tensors["bias"], None)
    return layer(tensors["weight_ih"], tensors["weight_hh"], *biases, **options)


def engine_run(kind, tensors, options, x, h0, upstream):
    """(every h_t, {tensor name: gradient}, dX, dh_0) of the engine from dZ = ``upstream``."""
    layer = engine_layer(kind, tensors, options)
    initial = (h0, np.zeros_like(h0)) if kind == "lstm" else h0
    out, cache = layer.run(x, initial=initial)
    through = layer.bptt(upstream, x, cache)
    names = ["weight_ih", "weight_hh", *(["bias_ih", "bias_hh"] if "bias_ih" in tensors else ["bias"])]
    return out, dict(zip(names, through.parameters, strict=True)), through.dx, through.initial[0]


def assert_agree(kind, engine, framework):
    for name, want, got in zip(("outputs", "gradients", "dX", "dh0"), engine, framework, strict=True):
        if isinstance(want, dict):
            assert set(want) == set(got), name
            for tensor in want:
                error = relative_error(got[tensor], want[tensor])
                assert error <= TOLERANCE, f"{kind} d{tensor}: rel err {error:.1e}"
        else:
            error = relative_error(got, want)
            assert error <= TOLERANCE, f"{kind} {name}: rel err {error:.1e}"


def case(seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (M, T, N)), rng.normal(0, 0.5, (M, H)), rng.normal(0, 1, (M, T, H))


# ------------------------------------------------------------------------------------ torch


TORCH_CASES = [("simple_rnn", {"activation": "tanh"}), ("simple_rnn", {"activation": "relu"}), ("lstm", {}),
               ("gru", {"reset_after": True})]


@pytest.mark.parametrize("kind,options", TORCH_CASES, ids=["rnn-tanh", "rnn-relu", "lstm", "gru"])
def test_torch_layer_and_the_engine_agree_on_every_step_and_gradient(kind, options):
    torch = pytest.importorskip("torch")
    tensors = drawn(kind, two_biases=True)
    x, h0, upstream = case()
    module = {"simple_rnn": lambda: torch.nn.RNN(N, H, batch_first=True,
                                                 nonlinearity=options.get("activation")),
              "lstm": lambda: torch.nn.LSTM(N, H, batch_first=True),
              "gru": lambda: torch.nn.GRU(N, H, batch_first=True)}[kind]().double()
    module.load_state_dict({name: torch.from_numpy(value) for name, value in to_torch(kind, tensors).items()})
    xt, h0t = torch.tensor(x, requires_grad=True), torch.tensor(h0[None], requires_grad=True)
    initial = (h0t, torch.zeros_like(h0t)) if kind == "lstm" else h0t
    out, _ = module(xt, initial)
    (out * torch.from_numpy(upstream)).sum().backward()
    grads = from_torch(kind, {name: p.grad.numpy() for name, p in module.named_parameters()})
    assert_agree(kind, engine_run(kind, tensors, options, x, h0, upstream),
                 (out.detach().numpy(), grads, xt.grad.numpy(), h0t.grad.numpy()[0]))


def test_torch_holds_two_biases_and_draws_every_tensor_from_uniform_one_over_root_h():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    hidden = 64
    lstm, gru = torch.nn.LSTM(5, hidden), torch.nn.GRU(5, hidden)
    assert {name: tuple(p.shape) for name, p in lstm.named_parameters()} == {
        "weight_ih_l0": (4 * hidden, 5), "weight_hh_l0": (4 * hidden, hidden),
        "bias_ih_l0": (4 * hidden,), "bias_hh_l0": (4 * hidden,)}
    assert tuple(gru.bias_hh_l0.shape) == (3 * hidden,)
    bound = 1 / np.sqrt(hidden)
    for module in (lstm, gru):
        for name, parameter in module.named_parameters():
            values = parameter.detach().numpy()
            assert values.min() >= -bound and values.max() <= bound, name            # U(−1/√H, 1/√H)
            assert values.max() > 0.9 * bound and values.min() < -0.9 * bound, name  # …filling it
    with pytest.raises(Exception, match="index out of range"):
        torch.nn.Embedding(4, 2)(torch.tensor([4]))


def test_a_layer_with_one_bias_has_no_torch_form():
    from scratch.errors import BackendError

    with pytest.raises(BackendError, match="two biases"):
        to_torch("lstm", drawn("lstm", two_biases=False))


# ------------------------------------------------------------------------------------ Keras


KERAS_CASES = [("simple_rnn", {"activation": "tanh"}, False), ("lstm", {}, False),
               ("gru", {"reset_after": True}, True), ("gru", {"reset_after": False}, False)]


@pytest.mark.parametrize("kind,options,two_biases", KERAS_CASES,
                         ids=["simple-rnn", "lstm", "gru-reset-after", "gru-reset-before"])
def test_keras_layer_and_the_engine_agree_on_every_step_and_gradient(kind, options, two_biases):
    keras = pytest.importorskip("keras")
    tf = pytest.importorskip("tensorflow")
    tensors = drawn(kind, two_biases, seed=2)
    x, h0, upstream = case(seed=3)
    reset_after = options.get("reset_after", True)
    layer = {"simple_rnn": lambda: keras.layers.SimpleRNN(H, return_sequences=True, dtype="float64"),
             "lstm": lambda: keras.layers.LSTM(H, return_sequences=True, dtype="float64"),
             "gru": lambda: keras.layers.GRU(H, return_sequences=True, reset_after=reset_after,
                                             dtype="float64")}[kind]()
    layer.build((M, T, N))
    layer.set_weights(to_keras(kind, tensors, reset_after))
    xt, h0t = tf.Variable(x), tf.Variable(h0)
    with tf.GradientTape() as tape:
        initial = [h0t, tf.zeros_like(h0t)] if kind == "lstm" else [h0t]
        out = layer(xt, initial_state=initial)
        loss = tf.reduce_sum(out * upstream)
    weights = layer.trainable_weights
    grads = tape.gradient(loss, [*weights, xt, h0t])
    engine_tensors = from_keras(kind, [g.numpy() for g in grads[:3]], reset_after)
    assert_agree(kind, engine_run(kind, tensors, options, x, h0, upstream),
                 (out.numpy(), engine_tensors, grads[3].numpy(), grads[4].numpy()))


def test_keras_shapes_gate_order_and_initial_values():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    hidden, features = 16, 5
    shapes = {}
    for name, layer in {"lstm": keras.layers.LSTM(hidden), "gru": keras.layers.GRU(hidden),
                        "gru_before": keras.layers.GRU(hidden, reset_after=False),
                        "rnn": keras.layers.SimpleRNN(hidden)}.items():
        layer.build((2, 3, features))
        shapes[name] = [tuple(w.shape) for w in layer.get_weights()]
        if name == "lstm":
            kernel, recurrent, bias = layer.get_weights()
    assert shapes == {"lstm": [(features, 4 * hidden), (hidden, 4 * hidden), (4 * hidden,)],
                      "gru": [(features, 3 * hidden), (hidden, 3 * hidden), (2, 3 * hidden)],
                      "gru_before": [(features, 3 * hidden), (hidden, 3 * hidden), (3 * hidden,)],
                      "rnn": [(features, hidden), (hidden, hidden), (hidden,)]}
    # unit_forget_bias: zeros but the forget block (Keras's second, as torch's) at 1
    np.testing.assert_array_equal(bias, np.r_[np.zeros(hidden), np.ones(hidden), np.zeros(2 * hidden)])
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(hidden), atol=1e-5)   # orthogonal rows
    glorot = np.sqrt(6 / (features + 4 * hidden))
    assert np.abs(kernel).max() <= glorot and np.abs(kernel).max() > 0.9 * glorot     # Glorot uniform


def test_the_layouts_round_trip_and_refuse_what_keras_cannot_hold():
    from scratch.errors import BackendError

    for kind, two in (("simple_rnn", False), ("lstm", False), ("gru", True)):
        tensors = drawn(kind, two)
        back = from_keras(kind, to_keras(kind, tensors))
        assert set(back) == set(tensors) and all(np.array_equal(back[k], tensors[k]) for k in tensors)
    gru = drawn("gru", True)
    kernel = to_keras("gru", gru)[0]
    np.testing.assert_array_equal(kernel[:, :H], gru["weight_ih"][H:2 * H].T)     # Keras's z is torch's z
    with pytest.raises(BackendError, match="one bias; two"):
        to_keras("lstm", drawn("lstm", two_biases=True))
    with pytest.raises(BackendError, match="reset_after=False form"):
        to_keras("gru", drawn("gru", two_biases=False), reset_after=True)
    with pytest.raises(ValueError, match=r"bias_hh: expected shape \(9,\), got \(8,\)"):
        to_torch("gru", dict(gru, bias_hh=np.zeros(8)))
    with pytest.raises(ValueError, match="expected the tensors"):
        to_keras("lstm", {"weight_ih": np.zeros((12, 4)), "weight_hh": np.zeros((12, 3))})


def test_keras_adam_applies_an_embeddings_sparse_gradient_densely():
    """An Embedding's gradient in TensorFlow is ``IndexedSlices`` (the rows the batch used). Keras's
    Adam still updates a row absent from a later batch by its momentum, as torch's Adam does with
    ``nn.Embedding``'s dense gradient: no lazy (sparse) Adam to tell apart in a port."""
    keras = pytest.importorskip("keras")
    tf = pytest.importorskip("tensorflow")
    table = keras.Variable(np.ones((3, 2)), dtype="float64")
    adam = keras.optimizers.Adam(0.1)

    def rows(indices):
        values = tf.ones((len(indices), 2), tf.float64)
        return tf.IndexedSlices(values, tf.constant(indices), tf.constant([3, 2]))

    adam.apply_gradients([(rows([0, 1]), table)])
    after_first = table.numpy().copy()
    adam.apply_gradients([(rows([0]), table)])                 # row 1 is not in the second batch
    assert not np.array_equal(table.numpy()[1], after_first[1])  # … and moves by its momentum
    np.testing.assert_array_equal(table.numpy()[2], [1.0, 1.0])  # a row never used stays


def test_keras_time_step_dropout_is_one_mask_per_sequence_and_per_gate_with_recurrent_dropout():
    """The facts the time-step dropout convention will rest on (not a spec field yet). Keras draws
    its input mask once per sequence and reuses it at every step: a linear SimpleRNN with no
    recurrent kernel, fed the same x at every step, gives the same h_t at every step. Asking for
    ``recurrent_dropout`` switches Keras's LSTM and GRU cells to ``implementation=1``, one mask per
    gate (4 and 3 of them) on the inputs and on h_{t−1}; ``dropout`` alone keeps one shared mask."""
    keras = pytest.importorskip("keras")
    rnn = keras.layers.SimpleRNN(5, activation="linear", dropout=0.5, return_sequences=True, dtype="float64")
    rnn.build((None, 4, 6))
    rnn.cell.recurrent_kernel.assign(np.zeros((5, 5)))
    x = np.repeat(np.random.default_rng(0).standard_normal((3, 1, 6)), 4, axis=1)     # 4 equal steps
    states = np.asarray(rnn(x, training=True))
    assert not np.allclose(states, np.asarray(rnn(x, training=False)))              # something dropped
    np.testing.assert_array_equal(states, np.repeat(states[:, :1], 4, axis=1))      # … the same each step
    gru = keras.layers.GRU(4, recurrent_dropout=0.25)
    lstm = keras.layers.LSTM(4, recurrent_dropout=0.25)
    plain = keras.layers.LSTM(4, dropout=0.25)
    assert (gru.cell.implementation, gru.cell.dropout_mask_count) == (1, 3)
    assert (lstm.cell.implementation, lstm.cell.dropout_mask_count) == (1, 4)
    assert plain.cell.implementation == 2 and getattr(plain.cell, "dropout_mask_count", None) is None


def test_torch_recurrent_dropout_acts_between_stacked_layers_only():
    torch = pytest.importorskip("torch")
    with pytest.warns(UserWarning, match="dropout"):
        one = torch.nn.LSTM(3, 4, num_layers=1, dropout=0.5, batch_first=True)
    x = torch.randn(2, 5, 3)
    one.train()
    first, second = one(x)[0], one(x)[0]
    assert torch.equal(first, second)                          # one layer: nothing is dropped


# -------------------------------------------------------------------------------------- JAX


def test_jax_indexing_clamps_a_token_out_of_range_and_take_fills_nan():
    jnp = pytest.importorskip("jax.numpy")
    table = jnp.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(np.asarray(table[jnp.array([4])]), np.asarray(table[3:4]))   # the last row
    assert np.isnan(np.asarray(jnp.take(table, jnp.array([4]), axis=0))).all()


JAX_CASES = [("simple_rnn", {"activation": "tanh"}, False), ("simple_rnn", {"activation": "relu"}, True),
             ("lstm", {}, True), ("lstm", {}, False), ("gru", {"reset_after": True}, True),
             ("gru", {"reset_after": False}, False)]


@pytest.mark.parametrize("kind,options,two_biases", JAX_CASES,
                         ids=["rnn-tanh", "rnn-relu", "lstm-two-biases", "lstm-one-bias", "gru-reset-after",
                              "gru-reset-before"])
def test_jax_scan_and_the_engine_agree_on_every_step_and_gradient(kind, options, two_biases):
    jax = pytest.importorskip("jax")
    import twins.jax_backend  # noqa: F401  (float64: the twin's x64 switch)
    from twins.jax_recurrent import run_recurrent

    tensors = drawn(kind, two_biases, seed=4)
    x, h0, upstream = case(seed=5)

    def loss(tensors, x, h0):
        initial = (h0, jax.numpy.zeros_like(h0)) if kind == "lstm" else h0
        return (run_recurrent(kind, tensors, x, initial, **options) * upstream).sum()

    initial = (h0, np.zeros_like(h0)) if kind == "lstm" else h0
    out = run_recurrent(kind, tensors, x, initial, **options)
    grads, dx, dh0 = jax.grad(loss, argnums=(0, 1, 2))(tensors, x, h0)
    assert np.asarray(out).dtype == np.float64
    gradients = {name: np.asarray(value) for name, value in grads.items()}
    assert_agree(kind, engine_run(kind, tensors, options, x, h0, upstream),
                 (np.asarray(out), gradients, np.asarray(dx), np.asarray(dh0)))
