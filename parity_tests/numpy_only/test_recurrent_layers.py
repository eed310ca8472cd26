"""The recurrent layers of ``scratch.layers.recurrent`` (SimpleRNN, LSTM, GRU in both reset forms,
Embedding, sequence pooling), float64, NumPy only:

* every gradient :meth:`bptt` returns — each declared tensor, dX, the initial state(s) and every
  time step's state gradient δh_t (and LSTM's δc_t) — against fourth-order central differences of
  L = Σ Z ⊙ R (R random, so dZ = R), for whole sequences and last-state outputs, one bias or two;
* the forward pass against the frameworks' equations written out here one sample and one step at
  a time, with every gate's weights different, so a permuted gate order cannot pass (a constant
  weight feeds every gate the same and would);
* the conventions the layers take: two biases are their sum in the forward pass, the reset-after
  GRU is not the reset-before one, a token out of range is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_gradients_fd import numerical_gradient

from scratch.layers.recurrent import GRU, LSTM, Embedding, SequencePool, SimpleRNN

RTOL = 1e-7


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def tensors(kind: str, n: int, hidden: int, two_biases: bool, seed: int = 0) -> dict:
    """Random tensors in the layer's layout, every gate block drawn separately."""
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    rng = np.random.default_rng(seed)
    drawn = {"weight_ih": rng.normal(0, 0.6, (gates * hidden, n)),
             "weight_hh": rng.normal(0, 0.6, (gates * hidden, hidden)),
             "bias_ih": rng.normal(0, 0.3, gates * hidden)}
    drawn["bias_hh"] = rng.normal(0, 0.3, gates * hidden) if two_biases else None
    return drawn


def build(kind: str, parameters: dict, **options):
    layer = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}[kind]
    return layer(parameters["weight_ih"], parameters["weight_hh"], parameters["bias_ih"],
                 parameters["bias_hh"], **options)


def assert_close(name, numerical, analytic):
    assert analytic.shape == numerical.shape, f"{name}: shape {analytic.shape}, expected {numerical.shape}"
    scale = max(np.max(np.abs(numerical)), 1e-12)
    error = np.max(np.abs(numerical - analytic)) / scale
    assert error <= RTOL, f"{name}: relative error {error:.2e} > {RTOL:.0e}"


CASES = [("rnn", {"activation": "tanh"}, True), ("rnn", {"activation": "relu"}, False),
         ("lstm", {}, True), ("lstm", {}, False),
         ("gru", {"reset_after": True}, True), ("gru", {"reset_after": False}, False)]
IDS = ["rnn-tanh-two-biases", "rnn-relu-one-bias", "lstm-two-biases", "lstm-one-bias",
       "gru-reset-after", "gru-reset-before"]


@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequence", "last"])
@pytest.mark.parametrize("kind,options,two_biases", CASES, ids=IDS)
def test_every_gradient_matches_finite_differences(kind, options, two_biases, return_sequences):
    m, steps, n, hidden = 3, 4, 2, 3
    rng = np.random.default_rng(7)
    parameters = tensors(kind, n, hidden, two_biases)
    layer = build(kind, parameters, return_sequences=return_sequences, **options)
    x = rng.normal(0, 1, (m, steps, n))
    initial = [rng.normal(0, 0.5, (m, hidden)) for _ in range(2 if kind == "lstm" else 1)]
    given = tuple(initial) if kind == "lstm" else initial[0]
    out, cache = layer.run(x, initial=given)
    weights = rng.normal(0, 1, out.shape)                                     # R: dZ = R

    def loss():
        return float(np.sum(layer.run(x, initial=given)[0] * weights))

    through = layer.bptt(weights, x, cache)
    names = [name for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
             if parameters[name] is not None]
    assert len(through.parameters) == len(names)
    for name, gradient in zip(names, through.parameters, strict=True):
        assert_close(f"d{name}", numerical_gradient(loss, parameters[name]), gradient)
    assert_close("dX", numerical_gradient(loss, x), through.dx)
    for index, state in enumerate(initial):
        assert_close(f"d initial state {index}", numerical_gradient(loss, state), through.initial[index])
    grads, dx = layer.differentiate(weights, x, cache)                    # the stack's protocol
    assert all(np.array_equal(a, b) for a, b in zip(grads, through.parameters, strict=True))
    np.testing.assert_array_equal(dx, through.dx)


def resumed_loss(layer, kind, x, given, weights, step, offset_h, offset_c=None):
    """L with h_step (and c_step) shifted by the offsets: the sequence run to ``step``, then resumed
    from the shifted state; what L gains per unit offset is δh_step (δc_step, the total gradient
    of c_step: through h_step = o ⊙ tanh(c_step) too)."""
    layer.return_sequences = True
    before, cache = layer.run(x[:, :step + 1], initial=given)
    if kind == "lstm":                                      # its cache is time-major (T, m, …)
        gates, cells = cache[0], cache[1]
        hidden = cells.shape[-1]
        c = cells[-1] + offset_c
        h = gates[-1, :, 3 * hidden:] * np.tanh(c) + offset_h
        resume = (h, c)
    else:
        h = resume = cache[-2][:, -1] + offset_h
    head = before.copy()
    head[:, -1] = h
    total = np.sum(head * weights[:, :step + 1])
    if step + 1 < x.shape[1]:
        after, _ = layer.run(x[:, step + 1:], initial=resume)
        total += np.sum(after * weights[:, step + 1:])
    return float(total)


@pytest.mark.parametrize("kind,options,two_biases", CASES, ids=IDS)
def test_each_time_steps_state_gradient_matches_finite_differences(kind, options, two_biases):
    m, steps, n, hidden = 2, 4, 2, 3
    rng = np.random.default_rng(11)
    layer = build(kind, tensors(kind, n, hidden, two_biases, seed=3), **options)
    x = rng.normal(0, 1, (m, steps, n))
    given = (np.zeros((m, hidden)), np.zeros((m, hidden))) if kind == "lstm" else None
    out, cache = layer.run(x, initial=given)
    weights = rng.normal(0, 1, out.shape)
    through = layer.bptt(weights, x, cache)
    zero = np.zeros((m, hidden))
    for step in range(steps):
        offset = np.zeros((m, hidden))
        numerical = numerical_gradient(
            lambda step=step, offset=offset: resumed_loss(layer, kind, x, given, weights, step, offset, zero),
            offset)
        assert_close(f"δh_{step + 1}", numerical, through.dh[:, step])
        if kind == "lstm":
            offset_c = np.zeros((m, hidden))
            numerical = numerical_gradient(
                lambda step=step, offset_c=offset_c: resumed_loss(layer, kind, x, given, weights, step, zero,
                                                                  offset_c),
                offset_c)
            assert_close(f"δc_{step + 1}", numerical, through.dc[:, step])


# --------------------------------------------------------------------- the forward, written out


def reference_states(kind, parameters, x, options):
    """Every h_t of one sample at a time, one step at a time, from the frameworks' equations:
    torch's nn.RNN / nn.LSTM / nn.GRU documentation (gates i, f, g, o and r, z, n), Keras's
    GRU(reset_after=False) for the reset-before form."""
    w_ih, w_hh, b_ih = parameters["weight_ih"], parameters["weight_hh"], parameters["bias_ih"]
    b_hh = parameters["bias_hh"] if parameters["bias_hh"] is not None else np.zeros_like(b_ih)
    hidden = w_hh.shape[1]
    out = np.zeros(x.shape[:2] + (hidden,))
    for sample in range(x.shape[0]):
        h, c = np.zeros(hidden), np.zeros(hidden)
        for t in range(x.shape[1]):
            xt = x[sample, t]
            if kind == "rnn":
                a = w_ih @ xt + b_ih + w_hh @ h + b_hh
                h = np.tanh(a) if options.get("activation", "tanh") == "tanh" else np.maximum(a, 0)
            elif kind == "lstm":
                block = [slice(k * hidden, (k + 1) * hidden) for k in range(4)]
                pre = [w_ih[s] @ xt + b_ih[s] + w_hh[s] @ h + b_hh[s] for s in block]
                i, f, g, o = sigmoid(pre[0]), sigmoid(pre[1]), np.tanh(pre[2]), sigmoid(pre[3])
                c = f * c + i * g
                h = o * np.tanh(c)
            else:
                r_, z_, n_ = (slice(k * hidden, (k + 1) * hidden) for k in range(3))
                r = sigmoid(w_ih[r_] @ xt + b_ih[r_] + w_hh[r_] @ h + b_hh[r_])
                z = sigmoid(w_ih[z_] @ xt + b_ih[z_] + w_hh[z_] @ h + b_hh[z_])
                if options["reset_after"]:
                    n = np.tanh(w_ih[n_] @ xt + b_ih[n_] + r * (w_hh[n_] @ h + b_hh[n_]))
                else:
                    n = np.tanh(w_ih[n_] @ xt + b_ih[n_] + w_hh[n_] @ (r * h))
                h = (1 - z) * n + z * h
            out[sample, t] = h
    return out


@pytest.mark.parametrize("kind,options,two_biases", CASES, ids=IDS)
def test_the_forward_pass_is_the_frameworks_equations_gate_by_gate(kind, options, two_biases):
    rng = np.random.default_rng(5)
    parameters = tensors(kind, 3, 4, two_biases, seed=9)
    x = rng.normal(0, 1, (2, 5, 3))
    states, _ = build(kind, parameters, **options).run(x)
    np.testing.assert_allclose(states, reference_states(kind, parameters, x, options), rtol=1e-13, atol=1e-15)
    last, _ = build(kind, parameters, return_sequences=False, **options).run(x)
    np.testing.assert_array_equal(last, states[:, -1])


def test_two_biases_are_their_sum_forward_and_each_gets_the_sum_gradient():
    parameters = tensors("lstm", 2, 3, two_biases=True, seed=2)
    x = np.random.default_rng(1).normal(0, 1, (2, 3, 2))
    folded = dict(parameters, bias_ih=parameters["bias_ih"] + parameters["bias_hh"], bias_hh=None)
    two, cache_two = build("lstm", parameters).run(x)
    one, cache_one = build("lstm", folded).run(x)
    np.testing.assert_allclose(two, one, rtol=1e-14, atol=1e-15)
    dz = np.ones_like(two)
    grads_two = build("lstm", parameters).bptt(dz, x, cache_two).parameters
    grads_one = build("lstm", folded).bptt(dz, x, cache_one).parameters
    np.testing.assert_array_equal(grads_two[2], grads_two[3])           # one gradient, two tensors
    np.testing.assert_allclose(grads_two[2], grads_one[2], rtol=1e-13)


def test_the_two_gru_forms_differ_and_reset_after_needs_its_recurrent_bias():
    parameters = tensors("gru", 2, 3, two_biases=True, seed=4)
    x = np.random.default_rng(2).normal(0, 1, (2, 3, 2))
    after, _ = build("gru", parameters, reset_after=True).run(x)
    before, _ = build("gru", dict(parameters, bias_hh=None), reset_after=False).run(x)
    assert np.max(np.abs(after - before)) > 1e-3
    with pytest.raises(ValueError, match="reset_after=True.*recurrent bias"):
        build("gru", dict(parameters, bias_hh=None), reset_after=True)
    with pytest.raises(ValueError, match="reset_after=False.*one bias"):
        build("gru", parameters, reset_after=False)


# ------------------------------------------------------------------ embedding, sequence pooling


def test_embedding_picks_rows_and_sums_the_gradient_of_a_repeated_token():
    table = np.random.default_rng(0).normal(0, 1, (5, 3))
    layer = Embedding(table)
    tokens = np.array([[0, 4, 4], [2, 0, 1]])
    out, cache = layer.run(tokens)
    np.testing.assert_array_equal(out, table[tokens])
    dz = np.random.default_rng(1).normal(0, 1, out.shape)
    (dtable,), dx = layer.differentiate(dz, tokens, cache)
    assert dx is None
    np.testing.assert_allclose(dtable[4], dz[0, 1] + dz[0, 2], rtol=1e-15)
    np.testing.assert_allclose(dtable[0], dz[0, 0] + dz[1, 1], rtol=1e-15)
    np.testing.assert_array_equal(dtable[3], 0.0)
    assert_close("dE", numerical_gradient(lambda: float(np.sum(layer.run(tokens)[0] * dz)), table), dtable)


@pytest.mark.parametrize("tokens,message", [(np.array([[0, 5]]), "token 5 is outside 0..4"),
                                            (np.array([[-1, 0]]), "token -1 is outside 0..4"),
                                            (np.array([[0.0, 1.0]]), "expected integer token ids")])
def test_embedding_refuses_a_token_it_has_no_row_for(tokens, message):
    with pytest.raises(ValueError, match=message):
        Embedding(np.zeros((5, 2))).run(tokens)


@pytest.mark.parametrize("mode", ["last", "mean"])
def test_sequence_pooling_matches_finite_differences(mode):
    rng = np.random.default_rng(3)
    x, pool = rng.normal(0, 1, (2, 4, 3)), SequencePool(mode)
    out, cache = pool.run(x)
    np.testing.assert_array_equal(out, x[:, -1] if mode == "last" else x.mean(axis=1))
    dz = rng.normal(0, 1, out.shape)
    _, dx = pool.differentiate(dz, x, cache)
    assert_close("dX", numerical_gradient(lambda: float(np.sum(pool.run(x)[0] * dz)), x), dx)
    with pytest.raises(ValueError, match="unknown mode 'first'"):
        SequencePool("first")


# ------------------------------------------------------- what ignoring a convention costs, measured


def sgd_run(layer, tensors: list[np.ndarray], x, target, steps: int, rate: float) -> list[np.ndarray]:
    """``steps`` of plain SGD on L = ½·‖h_T − target‖² / m (the last state against a target), every
    tensor updated in place; the last state after each step."""
    states = []
    for _ in range(steps):
        out, cache = layer.run(x)
        grads, _ = layer.differentiate((out - target) / len(x), x, cache)
        for tensor, gradient in zip(tensors, grads, strict=True):
            tensor -= rate * gradient
        states.append(layer.run(x)[0])
    return states


def test_folding_torchs_two_biases_into_one_is_exact_forward_and_drifts_under_training():
    """A port that loads torch's b_ih + b_hh into Keras's one bias starts from the same function,
    but each of torch's two biases gets the full gradient, so their sum moves 2η·g per step
    against η·g: measured on an LSTM (n 3, H 4, T 6, 8 sequences), SGD at η = 0.1."""
    rng = np.random.default_rng(21)
    x, target = rng.normal(0, 1, (8, 6, 3)), rng.normal(0, 0.5, (8, 4))
    two = tensors("lstm", 3, 4, two_biases=True, seed=8)
    one = {"weight_ih": two["weight_ih"].copy(), "weight_hh": two["weight_hh"].copy(),
           "bias_ih": two["bias_ih"] + two["bias_hh"], "bias_hh": None}
    torch_like = build("lstm", two, return_sequences=False)
    keras_like = build("lstm", one, return_sequences=False)
    start = np.max(np.abs(torch_like.run(x)[0] - keras_like.run(x)[0]))
    assert start <= 1e-15
    moved_two = sgd_run(torch_like, [two[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")],
                        x, target, 20, 0.1)
    moved_one = sgd_run(keras_like, [one[k] for k in ("weight_ih", "weight_hh", "bias_ih")],
                        x, target, 20, 0.1)
    gaps = [np.max(np.abs(a - b)) / np.max(np.abs(b)) for a, b in zip(moved_two, moved_one, strict=True)]
    assert min(gaps) > 1e-2, gaps                    # from the first step: the update's size, not rounding


def test_a_gru_run_in_the_other_reset_form_or_gate_order_is_another_function():
    """The same tensors read as the other GRU form (Keras's reset_after=False run as torch's), or
    with Keras's z, r, h blocks taken for torch's r, z, n: the outputs differ at the first step
    (relative error of order 1e-1, the size of the gates' effect, never a rounding)."""
    rng = np.random.default_rng(22)
    x = rng.normal(0, 1, (8, 6, 3))
    after = tensors("gru", 3, 4, two_biases=True, seed=9)
    right, _ = build("gru", after).run(x)
    before, _ = build("gru", dict(after, bias_ih=after["bias_ih"] + after["bias_hh"], bias_hh=None),
                      reset_after=False).run(x)
    swapped = {name: (np.concatenate([v[4:8], v[:4], v[8:]]) if v is not None else None)
               for name, v in after.items()}
    permuted, _ = build("gru", swapped).run(x)
    for wrong in (before, permuted):
        assert np.max(np.abs(wrong[:, 0] - right[:, 0])) / np.max(np.abs(right[:, 0])) > 1e-2
