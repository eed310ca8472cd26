"""The recurrent layers in JAX (issue 22): JAX has no recurrent layer of its own, so each is its
cell written with ``jax.numpy`` and ``jax.nn`` and run over time by ``jax.lax.scan``; gradients are
JAX's own autodiff through the scan (its transpose runs the steps backwards: BPTT).

The tensors are the engine's, in torch's layout (``twins.recurrent_layouts``): ``weight_ih``
(G·H, n), ``weight_hh`` (G·H, H) and ``bias_ih`` + ``bias_hh`` or one ``bias``, gates in torch's
order (LSTM i, f, g, o; GRU r, z, n). As in the engine, every step's input projection
X·W_ihᵀ + b_ih is one product over all steps before the scan. Inputs (m, T, n); the scan runs
over the time axis, so the sequences are swapped to (T, m, n) for it and the states back to
(m, T, H) after.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def run_recurrent(kind: str, tensors: dict, x, initial, *, activation: str = "tanh",
                  reset_after: bool = True):
    """Every h_t (m, T, H) of a ``kind`` layer ("simple_rnn", "lstm", "gru") on ``x`` (m, T, n)
    from ``initial``: h_0 (m, H), or (h_0, c_0) for the LSTM."""
    w_ih, w_hh = tensors["weight_ih"], tensors["weight_hh"]
    b_ih = tensors["bias_ih"] if "bias_ih" in tensors else tensors["bias"]
    b_hh = tensors.get("bias_hh")
    hidden = w_hh.shape[1]
    projected = jnp.swapaxes(x @ w_ih.T + b_ih, 0, 1)                       # (T, m, G·H)

    def recurrent(h):
        q = h @ w_hh.T
        return q if b_hh is None else q + b_hh

    def simple_rnn(h, p):
        a = p + recurrent(h)
        h = jnp.tanh(a) if activation == "tanh" else jax.nn.relu(a)
        return h, h

    def lstm(carry, p):
        h, c = carry
        i, f, g, o = jnp.split(p + recurrent(h), 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    def gru(h, p):
        p_r, p_z, p_n = jnp.split(p, 3, axis=-1)
        if reset_after:
            q_r, q_z, q_n = jnp.split(recurrent(h), 3, axis=-1)
            r, z = jax.nn.sigmoid(p_r + q_r), jax.nn.sigmoid(p_z + q_z)
            n = jnp.tanh(p_n + r * q_n)
        else:
            q_r, q_z = jnp.split(h @ w_hh[:2 * hidden].T, 2, axis=-1)
            r, z = jax.nn.sigmoid(p_r + q_r), jax.nn.sigmoid(p_z + q_z)
            n = jnp.tanh(p_n + (r * h) @ w_hh[2 * hidden:].T)
        h = (1 - z) * n + z * h
        return h, h

    step = {"simple_rnn": simple_rnn, "lstm": lstm, "gru": gru}[kind]
    _, states = jax.lax.scan(step, initial, projected)
    return jnp.swapaxes(states, 0, 1)
