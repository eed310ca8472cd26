"""Recurrent layers — SimpleRNN, LSTM and GRU — with backpropagation through time written out
beside each forward pass; vectorized over the batch, a loop over the T time steps.

Shapes: inputs X (m, T, n), m sequences of T steps of n features; the state h_t (m, H). Every
weight is stored in the engine's (and torch's) layout, rows the outputs: W_ih (G·H, n) and W_hh
(G·H, H), the G gate blocks stacked in torch's order (LSTM G = 4: i, f, g, o; GRU G = 3: r, z,
n; SimpleRNN G = 1). The biases are b_ih and b_hh (G·H,) each when the layer has two (torch's
convention: both always added, so under training the pair moves twice as far as one bias with
the same gradient), else one b (G·H,) (Keras's LSTM, SimpleRNN and ``GRU(reset_after=False)``).
The input projection of every step is one matrix product, P = X·W_ihᵀ + b_ih (m, T, G·H), and so
are, backward, dW_ih = Σ_t dZ_tᵀ·X_t and dX = dZ·W_ih over all steps at once; only the recurrence
h_{t−1} → h_t runs step by step.

Forward (h_0 zero or given; the output is every h_t (m, T, H) or the last h_T (m, H)):

    SimpleRNN   a_t = P_t + h_{t−1}·W_hhᵀ + b_hh,   h_t = g(a_t)          (g tanh or ReLU)
    LSTM        z_t = P_t + h_{t−1}·W_hhᵀ + b_hh = [z_i, z_f, z_g, z_o]
                i, f, o = σ(z_i), σ(z_f), σ(z_o),   g = tanh(z_g)
                c_t = f ⊙ c_{t−1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
    GRU         [p_r, p_z, p_n] = P_t,   [q_r, q_z, q_n] = h_{t−1}·W_hhᵀ + b_hh
                r = σ(p_r + q_r),   z = σ(p_z + q_z)
                reset after (torch, Keras's default):   n = tanh(p_n + r ⊙ q_n)
                reset before (the paper's, Keras's reset_after=False):
                                          n = tanh(p_n + (r ⊙ h_{t−1})·W_hnᵀ)    (no recurrent bias)
                h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

Backward through time, from the gradient on the outputs (dH_t (m, H) for every t; for a layer
returning the last state only dH_T ≠ 0). Going t = T … 1, the state's total gradient is what
the output receives plus what step t + 1 hands back, δh_t = dH_t + (δ carried from t + 1):

    SimpleRNN   δa_t = δh_t ⊙ g′(a_t);   hands back δa_t·W_hh
    LSTM        δc_t = δc carried (from t + 1, ⊙ f_{t+1}) + δh_t ⊙ o ⊙ (1 − tanh²(c_t))
                δz_i = δc_t ⊙ g ⊙ i(1 − i),   δz_f = δc_t ⊙ c_{t−1} ⊙ f(1 − f),
                δz_g = δc_t ⊙ i ⊙ (1 − g²),   δz_o = δh_t ⊙ tanh(c_t) ⊙ o(1 − o)
                hands back δz_t·W_hh to h_{t−1} and δc_t ⊙ f to c_{t−1}
    GRU         δn = δh_t ⊙ (1 − z) ⊙ (1 − n²),   δz = δh_t ⊙ (h_{t−1} − n) ⊙ z(1 − z)
                after:  δq_n = δn ⊙ r,   δr = δn ⊙ q_n ⊙ r(1 − r)
                        hands back δh_t ⊙ z + [δr, δz, δq_n]·W_hh
                before: δ(r ⊙ h) = δn·W_hn,   δr = δ(r ⊙ h) ⊙ h_{t−1} ⊙ r(1 − r)
                        hands back δh_t ⊙ z + δ(r ⊙ h) ⊙ r + [δr, δz]·W_h[r,z]

and the parameters sum their steps: dW_hh = Σ_t δ_tᵀ·h_{t−1} (for the reset-before GRU, the n
block takes δn_tᵀ·(r ⊙ h_{t−1})), db_hh = Σ_{rows, t} δ_t, and what reaches h_0 is the gradient
of the initial state. :meth:`bptt` returns all of it, every step's δh_t (and LSTM's δc_t)
included, so a comparison can name the time step where two backward passes part.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scratch.activations import ReLU, Sigmoid, Tanh

_SIGMOID, _TANH = Sigmoid(), Tanh()


class Through(NamedTuple):
    """What :meth:`bptt` finds: the declared tensors' gradients in declaration order, dX (m, T, n),
    every step's state gradient δh_t (m, T, H) (the total reaching h_t, before step t uses it),
    LSTM's δc_t (m, T, H) (else None), and the gradients of the initial state(s): dh_0 (m, H)
    and, for the LSTM, dc_0."""

    parameters: tuple[np.ndarray, ...]
    dx: np.ndarray
    dh: np.ndarray
    dc: np.ndarray | None
    initial: tuple[np.ndarray, ...]


def _step_gradients(dz: np.ndarray, steps: int, last_only: bool) -> np.ndarray:
    """dH (m, T, H) from the layer output's gradient: itself, or dZ (m, H) at the last step."""
    if not last_only:
        return dz
    full = np.zeros((dz.shape[0], steps, dz.shape[1]), dtype=dz.dtype)
    full[:, -1] = dz
    return full


def time_major(array: np.ndarray) -> np.ndarray:
    """(m, T, …) → (T, m, …), contiguous: each step's rows one block. Swapping the two leading
    axes is its own inverse, so the same copy takes (T, m, …) back to the boundary's (m, T, …)."""
    return np.ascontiguousarray(np.swapaxes(array, 0, 1))


batch_major = time_major                # (T, m, …) → (m, T, …): the layer's boundary layout


def _parameter_formulas(**extra) -> dict:
    """Each declared tensor's gradient: the sums over steps of :meth:`Recurrent.parameter_sums`."""
    return {"weight_ih": ("dW_ih = Σ_t δ_tᵀ·X_t", "parameter_sums:dw_ih"),
            "weight_hh": ("dW_hh = Σ_t δ_tᵀ·h_{t−1}", "parameter_sums:dw_hh"),
            "bias_ih": ("db_ih = Σ_{rows, t} δ_t", "parameter_sums:db"),
            "bias_hh": ("db_hh = Σ_{rows, t} δ_t", "parameter_sums:db"),
            "bias": ("db = Σ_{rows, t} δ_t", "parameter_sums:db"), **extra}


class Recurrent:
    """The parts every recurrent layer shares: the tensors (held by reference, the arrays the
    optimizer updates in place), the input projection and the parameter sums over steps."""

    def __init__(self, weight_ih: np.ndarray, weight_hh: np.ndarray, bias_ih: np.ndarray,
                 bias_hh: np.ndarray | None = None, *, return_sequences: bool = True):
        self.weight_ih, self.weight_hh = weight_ih, weight_hh           # (G·H, n), (G·H, H)
        self.bias_ih, self.bias_hh = bias_ih, bias_hh                   # (G·H,), (G·H,) or None
        self.return_sequences = return_sequences
        self.units = weight_hh.shape[1]

    def projection(self, x: np.ndarray) -> np.ndarray:
        """P = X·W_ihᵀ + b_ih for every step at once: (m, T, G·H)."""
        p = x @ self.weight_ih.T
        p += self.bias_ih
        return p

    def initial_state(self, x: np.ndarray, initial: np.ndarray | None) -> np.ndarray:
        if initial is None:
            return np.zeros((x.shape[0], self.units), dtype=x.dtype)
        if initial.shape != (x.shape[0], self.units):
            raise ValueError(f"initial state: expected shape ({x.shape[0]}, {self.units}), "
                             f"got {initial.shape}")
        return initial

    def output(self, states: np.ndarray) -> np.ndarray:
        """The layer's output from every h_t (m, T, H): all of them, or h_T."""
        return states if self.return_sequences else states[:, -1]

    def parameter_sums(self, x, dgates, inputs_hh) -> tuple[np.ndarray, ...]:
        """(dW_ih, dW_hh, db_ih[, db_hh]) from every step's gate gradient δ_t (m, T, G·H), the
        inputs x (m, T, n) and what W_hh multiplied at each step, inputs_hh (m, T, H) (h_{t−1});
        or all three time-major (T, m, …): the sums run over both leading axes."""
        m, steps, width = dgates.shape
        flat = dgates.reshape(m * steps, width)
        dw_ih = flat.T @ x.reshape(m * steps, -1)                         # Σ_t δ_tᵀ·X_t
        dw_hh = flat.T @ inputs_hh.reshape(m * steps, -1)                 # Σ_t δ_tᵀ·h_{t−1}
        db = flat.sum(axis=0)
        return (dw_ih, dw_hh, db) if self.bias_hh is None else (dw_ih, dw_hh, db, db.copy())

    def differentiate(self, dz, x, cache, l2: float = 0.0, input_gradient: bool = True):
        """The stack's protocol: ((each declared tensor's gradient), dX or None)."""
        through = self.bptt(dz, x, cache)
        if l2:                                                 # λ·W on both kernels, not the biases
            kernels = (self.weight_ih, self.weight_hh)
            for gradient, kernel in zip(through.parameters[:2], kernels, strict=True):
                np.add(gradient, x.dtype.type(l2) * kernel, out=gradient)
        return through.parameters, through.dx if input_gradient else None

    def bptt(self, dz, x, cache) -> Through:
        raise NotImplementedError


class SimpleRNN(Recurrent):
    """h_t = g(X_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ [+ b_hh]), g tanh or ReLU (module docstring)."""

    FORMULAS = {"Z": ("h_t = g(X_t·W_ihᵀ + h_{t−1}·W_hhᵀ + b)", "run:state"),
                "dA_prev": ("dX_t = δa_t·W_ih", "bptt:dx"), **_parameter_formulas()}

    def __init__(self, weight_ih, weight_hh, bias_ih, bias_hh=None, *, activation: str = "tanh",
                 return_sequences: bool = True):
        super().__init__(weight_ih, weight_hh, bias_ih, bias_hh, return_sequences=return_sequences)
        self.activation = {"tanh": Tanh(), "relu": ReLU()}[activation]

    def run(self, x: np.ndarray, training: bool = True, update: bool = False, initial=None):
        """(the output, cache): cache (every a_t, every h_t, h_0)."""
        projected = self.projection(x)
        h = h0 = self.initial_state(x, initial)
        pre, states = np.empty_like(projected), np.empty_like(projected)
        for t in range(x.shape[1]):
            a = projected[:, t] + h @ self.weight_hh.T
            if self.bias_hh is not None:
                a += self.bias_hh
            state = self.activation.forward(a)
            pre[:, t], states[:, t], h = a, state, state
        return self.output(states), (pre, states, h0)

    def bptt(self, dz, x, cache) -> Through:
        pre, states, h0 = cache
        dh_out = _step_gradients(dz, x.shape[1], not self.return_sequences)
        previous = np.concatenate([h0[:, None], states[:, :-1]], axis=1)            # h_{t−1} (m, T, H)
        da, dh = np.empty_like(pre), np.empty_like(pre)
        carried = np.zeros_like(h0)
        for t in range(x.shape[1] - 1, -1, -1):
            dh[:, t] = dh_out[:, t] + carried
            da[:, t] = self.activation.backward(pre[:, t], states[:, t], dh[:, t])
            carried = da[:, t] @ self.weight_hh
        dx = da @ self.weight_ih
        return Through(self.parameter_sums(x, da, previous), dx, dh, None, (carried,))


class LSTM(Recurrent):
    """torch's and Keras's LSTM (gates i, f, g, o; module docstring)."""

    FORMULAS = {"Z": ("c_t = f ⊙ c_{t−1} + i ⊙ g,  h_t = o ⊙ tanh(c_t)", "run:cell", "run:h"),
                "dA_prev": ("dX_t = δz_t·W_ih", "bptt:dx"), **_parameter_formulas()}

    def run(self, x: np.ndarray, training: bool = True, update: bool = False, initial=None):
        """(the output, cache): cache (every step's gates i, f, g, o (T, m, 4H), every c_t and
        tanh(c_t), every h_t (T, m, H), h_0, c_0), time-major so that each step's slab is one
        contiguous block. ``initial`` is (h_0, c_0) or None."""
        h0, c0 = (None, None) if initial is None else initial
        h, cell = self.initial_state(x, h0), self.initial_state(x, c0)
        first_h, first_c = h, cell
        hidden, steps = self.units, x.shape[1]
        projected = time_major(self.projection(x))                          # (T, m, 4H)
        gates = np.empty_like(projected)
        cells, squashed, states = (np.empty((steps, x.shape[0], hidden), dtype=x.dtype) for _ in range(3))
        for t in range(steps):
            z = gates[t]                                                     # this step's (m, 4H)
            np.matmul(h, self.weight_hh.T, out=z)
            z += projected[t]
            if self.bias_hh is not None:
                z += self.bias_hh
            z[:, :2 * hidden] = _SIGMOID.forward(z[:, :2 * hidden])          # i, f
            z[:, 2 * hidden:3 * hidden] = _TANH.forward(z[:, 2 * hidden:3 * hidden])   # g
            z[:, 3 * hidden:] = _SIGMOID.forward(z[:, 3 * hidden:])          # o
            i, f, g, o = np.split(z, 4, axis=1)                              # views of the slab
            cell = np.multiply(f, cell, out=cells[t])
            cell += i * g
            h = np.multiply(o, np.tanh(cell, out=squashed[t]), out=states[t])
        output = batch_major(states) if self.return_sequences else states[-1].copy()   # h_T: no full copy
        return output, (gates, cells, squashed, states, first_h, first_c)

    def bptt(self, dz, x, cache) -> Through:
        gates, cells, squashed, states, h0, c0 = cache
        hidden, steps = self.units, x.shape[1]
        dh_out = time_major(_step_gradients(dz, steps, not self.return_sequences))
        previous_h = np.concatenate([h0[None], states[:-1]])                  # h_{t−1} (T, m, H)
        previous_c = np.concatenate([c0[None], cells[:-1]])
        dgates, dh, dc = np.empty_like(gates), np.empty_like(states), np.empty_like(cells)
        carried_h, carried_c = np.zeros_like(h0), np.zeros_like(c0)
        for t in range(steps - 1, -1, -1):
            i, f = gates[t, :, :hidden], gates[t, :, hidden:2 * hidden]
            g, o = gates[t, :, 2 * hidden:3 * hidden], gates[t, :, 3 * hidden:]
            np.add(dh_out[t], carried_h, out=dh[t])
            np.add(carried_c, dh[t] * o * (1 - squashed[t] ** 2), out=dc[t])
            delta = dgates[t]
            np.multiply(dc[t] * g, i * (1 - i), out=delta[:, :hidden])
            np.multiply(dc[t] * previous_c[t], f * (1 - f), out=delta[:, hidden:2 * hidden])
            np.multiply(dc[t] * i, 1 - g * g, out=delta[:, 2 * hidden:3 * hidden])
            np.multiply(dh[t] * squashed[t], o * (1 - o), out=delta[:, 3 * hidden:])
            carried_h = dgates[t] @ self.weight_hh
            carried_c = dc[t] * f
        dx = batch_major(dgates @ self.weight_ih)
        return Through(self.parameter_sums(time_major(x), dgates, previous_h), dx, batch_major(dh),
                       batch_major(dc), (carried_h, carried_c))


class GRU(Recurrent):
    """torch's GRU and Keras's in both forms (gates r, z, n; ``reset_after``; module docstring).
    The reset-before form has one bias b (3H,), as Keras's ``GRU(reset_after=False)``."""

    FORMULAS = {"Z": ("h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}", "run:h"),
                "dA_prev": ("dX_t = [δr, δz, δn]_t·W_ih", "bptt:dx"),
                **_parameter_formulas(weight_hh=("dW_hh = Σ_t [δr, δz, δq_n]_tᵀ·h_{t−1}", "bptt:dw_hh"),
                                      bias_hh=("db_hh = Σ_{rows, t} [δr, δz, δq_n]_t", "bptt:parameters"))}

    def __init__(self, weight_ih, weight_hh, bias_ih, bias_hh=None, *, reset_after: bool = True,
                 return_sequences: bool = True):
        if reset_after and bias_hh is None:
            raise ValueError("GRU(reset_after=True) has a recurrent bias b_hh: r multiplies "
                             "q_n = h·W_hnᵀ + b_hn")
        if not reset_after and bias_hh is not None:
            raise ValueError("GRU(reset_after=False) has one bias: the recurrent term has none")
        super().__init__(weight_ih, weight_hh, bias_ih, bias_hh, return_sequences=return_sequences)
        self.reset_after = reset_after

    def run(self, x: np.ndarray, training: bool = True, update: bool = False, initial=None):
        """(the output, cache): cache (every step's r, z, n (m, T, 3H), the reset-after form's
        q_n or the reset-before form's r ⊙ h_{t−1} (m, T, H), every h_t, h_0)."""
        hidden = self.units
        projected = self.projection(x)
        h = h0 = self.initial_state(x, initial)
        gates = np.empty_like(projected)
        reset_terms, states = (np.empty(projected.shape[:2] + (hidden,), dtype=x.dtype) for _ in range(2))
        for t in range(x.shape[1]):
            p = projected[:, t]
            if self.reset_after:
                q = h @ self.weight_hh.T + self.bias_hh
                r = _SIGMOID.forward(p[:, :hidden] + q[:, :hidden])
                z = _SIGMOID.forward(p[:, hidden:2 * hidden] + q[:, hidden:2 * hidden])
                term = q[:, 2 * hidden:]                                        # q_n
                n = _TANH.forward(p[:, 2 * hidden:] + r * term)
            else:
                q = h @ self.weight_hh[:2 * hidden].T
                r = _SIGMOID.forward(p[:, :hidden] + q[:, :hidden])
                z = _SIGMOID.forward(p[:, hidden:2 * hidden] + q[:, hidden:])
                term = r * h                                                    # r ⊙ h_{t−1}
                n = _TANH.forward(p[:, 2 * hidden:] + term @ self.weight_hh[2 * hidden:].T)
            h = (1 - z) * n + z * h
            gates[:, t] = np.concatenate([r, z, n], axis=1)
            reset_terms[:, t], states[:, t] = term, h
        return self.output(states), (gates, reset_terms, states, h0)

    def bptt(self, dz, x, cache) -> Through:
        gates, reset_terms, states, h0 = cache
        hidden, steps = self.units, x.shape[1]
        dh_out = _step_gradients(dz, steps, not self.return_sequences)
        previous = np.concatenate([h0[:, None], states[:, :-1]], axis=1)
        dinput, drecurrent, dh = np.empty_like(gates), np.empty_like(gates), np.empty_like(states)
        carried = np.zeros_like(h0)
        for t in range(steps - 1, -1, -1):
            r, z, n = gates[:, t, :hidden], gates[:, t, hidden:2 * hidden], gates[:, t, 2 * hidden:]
            dh[:, t] = dh_out[:, t] + carried
            dn = dh[:, t] * (1 - z) * (1 - n * n)
            dz_pre = dh[:, t] * (previous[:, t] - n) * z * (1 - z)
            carried = dh[:, t] * z
            if self.reset_after:
                dr_pre = dn * reset_terms[:, t] * r * (1 - r)
                drecurrent[:, t] = np.concatenate([dr_pre, dz_pre, dn * r], axis=1)
                carried = carried + drecurrent[:, t] @ self.weight_hh
            else:
                dreset = dn @ self.weight_hh[2 * hidden:]                      # δ(r ⊙ h_{t−1})
                dr_pre = dreset * previous[:, t] * r * (1 - r)
                drecurrent[:, t] = np.concatenate([dr_pre, dz_pre, dn], axis=1)
                carried = carried + dreset * r + drecurrent[:, t, :2 * hidden] @ self.weight_hh[:2 * hidden]
            dinput[:, t] = np.concatenate([dr_pre, dz_pre, dn], axis=1)
        dx = dinput @ self.weight_ih
        parameters = self.parameter_sums(x, dinput, previous)
        m = x.shape[0]
        if self.reset_after:                                   # the recurrent block's δ differs in n
            flat = drecurrent.reshape(m * steps, -1)
            dw_hh = flat.T @ previous.reshape(m * steps, -1)
            parameters = (parameters[0], dw_hh, parameters[2], flat.sum(axis=0))
        else:                                                  # W_hn multiplied r ⊙ h_{t−1}
            dw_hh = parameters[1]
            dw_hh[2 * hidden:] = (dinput[:, :, 2 * hidden:].reshape(m * steps, -1).T
                                  @ reset_terms.reshape(m * steps, -1))
        return Through(parameters, dx, dh, None, (carried,))


def token_problem(x: np.ndarray, vocabulary: int) -> str | None:
    """What is wrong with ``x`` as token ids of a table of ``vocabulary`` rows (integers in
    0..V−1), or None."""
    if x.dtype.kind not in "iu":
        return f"expected integer token ids, got {x.dtype}"
    if x.size and (x.min() < 0 or x.max() >= vocabulary):
        bad = x[(x < 0) | (x >= vocabulary)][0]
        return f"token {bad} is outside 0..{vocabulary - 1}"
    return None


class Embedding:
    """Z = E[X]: integer tokens X (m, T) in 0..V−1 pick rows of E (V, d), giving (m, T, d).

    Backward, dE = Σ over every position where token v occurs of dZ there (``np.add.at``: a
    token used twice gets both gradients); there is no gradient with respect to the integers.
    A token out of 0..V−1 raises ValueError (torch raises; JAX's ``x[i]`` clamps to the last row
    and ``jnp.take`` gives NaN, so an index check is the port's job there)."""

    FORMULAS = {"Z": ("Z = E[X]", "run:return"), "E": ("dE_v = Σ_{X = v} dZ", "differentiate:de"),
                "dA_prev": ("none: the token ids are integers", "differentiate:return")}

    def __init__(self, table: np.ndarray):
        self.table = table                                     # E (V, d)

    def run(self, x: np.ndarray, training: bool = True, update: bool = False):
        problem = token_problem(x, len(self.table))
        if problem:
            raise ValueError(f"embedding: {problem}")
        return self.table[x], None

    def differentiate(self, dz, x, cache, l2: float = 0.0, input_gradient: bool = True):
        de = np.zeros_like(self.table)
        np.add.at(de, x, dz)
        return (de,), None


class SequencePool:
    """(m, T, H) → (m, H): the last step (Z = X_T; dX_T = dZ, every other step 0) or the mean over
    time (Z = (1/T)·Σ_t X_t; dX_t = dZ / T for every t)."""

    FORMULAS = {"Z": ("Z = X_T, or (1/T)·Σ_t X_t", "run:return"),
                "dA_prev": ("dX_T = dZ, or dX_t = dZ/T", "differentiate:dx")}

    def __init__(self, mode: str = "last"):
        if mode not in ("last", "mean"):
            raise ValueError(f"sequence pooling: unknown mode {mode!r}; expected last or mean")
        self.mode = mode

    def run(self, x: np.ndarray, training: bool = True, update: bool = False):
        return (x[:, -1].copy() if self.mode == "last" else x.mean(axis=1)), None

    def differentiate(self, dz, x, cache, l2: float = 0.0, input_gradient: bool = True):
        if not input_gradient:
            return (), None
        if self.mode == "last":
            dx = np.zeros_like(x)
            dx[:, -1] = dz
        else:
            dx = np.broadcast_to((dz / x.dtype.type(x.shape[1]))[:, None], x.shape).copy()
        return (), dx
