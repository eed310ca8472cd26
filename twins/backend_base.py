"""The one base class of every backend (NumPy in, NumPy out): what they share, and the hooks each
implements with its own framework.

Names follow the seeds' notation, 1-based by numbered layer (every layer of the spec but
dropout, see ``scratch.layer_specs``): ``Z1, A1, …, ZL, AL`` (forward), ``dZl, dAl`` (gradients
of the loss), ``dWl, dbl`` for the layers with parameters (``spec.parameter_layers``), and
``loss`` (mean batch loss + L2 penalty). dA_L appears only when the loss reads A_L (MSE); BCE and
CCE read the logits Z_L. Maps cross every boundary channels-first, (m, C, H, W), whatever the
framework computes in. Parameters cross in the canonical layout of the weight file (dense W_l
(n_l, n_{l−1}), conv2d W_l (O, C, k_h, k_w), BatchNorm/LayerNorm γ_l, β_l), in the order W_l, b_l
of ``spec.parameter_layers``; running statistics as (mean, variance) per batch_norm layer;
optimizer state as :class:`judge.optimizer_state.OptimizerState`.

BatchNorm: :meth:`trace`, :meth:`layer_trace` and :meth:`forward` run it in training mode (the
batch's statistics) and leave the running statistics as they were; :meth:`train_step` moves them
(and :meth:`apply_gradients` does not: it sees no batch); :meth:`inference` and
:meth:`inference_outputs` use them.

Shared here: the training loop over the shared plan (:meth:`Backend.fit`), the export to the
shared weight file (:meth:`Backend.save`) and :meth:`Backend.gradients`. Each subclass implements
the hooks below.

Public hooks, and what crosses them: :meth:`forward` and :meth:`loss` return the framework's own
tensors (torch tensors with their autograd graph, TensorFlow tensors recorded on any active
``tf.GradientTape``, JAX arrays traceable by ``jax.make_jaxpr``, NumPy for the engine) — they
exist so that ``explain`` can inspect how each framework differentiates them; their inputs
(x, masks, targets) are NumPy. Everything else is NumPy in, NumPy out: :meth:`gradients`,
:meth:`trace`, :meth:`layer_trace`, :meth:`train_step`, the parameters and optimizer state.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from judge.optimizer_state import OptimizerState, canonical_gradients
from scratch.batching import Step, batches
from scratch.errors import BackendError
from scratch.layers.recurrent import token_problem
from scratch.model import pair_names, pair_tensors
from scratch.spec import ModelSpec
from scratch.weights import save_tensors


def check_tokens(spec: ModelSpec, x, backend: str) -> None:
    """For a stack that starts with an embedding, a :class:`BackendError` unless the NumPy ``x``
    holds integer token ids in 0..V−1: every twin refuses alike (torch raises its own IndexError,
    TensorFlow's gather its own message, JAX clamps without an error). A tensor being traced into
    a graph passes (its values are not known yet)."""
    if spec.token_inputs and isinstance(x, np.ndarray):
        problem = token_problem(x, spec.layers[0].vocabulary)
        if problem:
            raise BackendError(f"{backend} backend: x: {problem}")


def given_tensors(spec: ModelSpec, weights, biases, tensors, backend: str) -> list[dict]:
    """The named tensors ({name: canonical array} per layer of ``spec.parameter_layers``) a twin is
    built or re-synchronized with: ``tensors``, or — the flat API's thin adapter — the (W_l, b_l)
    lists of a stack whose every layer holds a (W, b)-shaped pair (a PReLU's α refuses them)."""
    if tensors is not None:
        if weights is not None or biases is not None:
            raise BackendError(f"{backend} backend: give tensors, or weights and biases, not both")
        if len(tensors) != len(spec.parameter_layers):
            raise BackendError(f"{backend} backend: tensors for {len(tensors)} layers, the spec has "
                               f"{len(spec.parameter_layers)} layers with parameters")
        return tensors
    if len(weights) != len(spec.parameter_layers) or len(biases) != len(spec.parameter_layers):
        raise BackendError(f"{backend} backend: expected {len(spec.parameter_layers)} weights and biases, "
                           f"got {len(weights)} and {len(biases)}")
    return pair_tensors(spec, weights, biases)


def flat(spec: ModelSpec, tensors) -> list:
    """[every trainable tensor of every layer with parameters], declaration order: the optimizer's."""
    return [layer[name] for layer, names in zip(tensors, spec.parameter_names, strict=True) for name in names]


def nest(spec: ModelSpec, arrays) -> list[dict]:
    """The inverse of :func:`flat`."""
    arrays, nested = iter(arrays), []
    for names in spec.parameter_names:
        nested.append({name: next(arrays) for name in names})
    return nested


class Backend:
    name: str = "backend"

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    # -- shared -----------------------------------------------------------------------------

    def fit(self, x: np.ndarray, targets: np.ndarray, plan: Iterable[Step],
            fused: bool = False) -> np.ndarray:
        """Run every step of ``plan`` (batches and dropout masks from ``scratch.batching``);
        returns the loss of every step.

        ``fused=False`` runs :meth:`train_step`, the step the parity checks compare. ``fused=True``
        lets a framework that compiles run each whole step as one compiled program (a
        ``tf.function`` graph, one ``jax.jit`` at XLA's default optimization), as its users train:
        the same operations, compiled once per batch shape, which a long run (MNIST) amortizes
        and a parity check on a handful of steps does not. Eager backends ignore it."""
        return np.array([self.train_step(xb, yb, step.masks) for step, xb, yb in batches(x, targets, plan)])

    def save(self, path):
        """Write the current parameters, running statistics and the spec to the shared weight file."""
        return save_tensors(path, self.spec, self.tensors(), self.statistics())

    def gradients(self, x: np.ndarray, targets: np.ndarray,
                  masks: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """[dW_1, db_1, …] (every trainable tensor's gradient, canonical layout, the optimizer's
        order) of the loss on (x, targets); by default read from :meth:`trace` (a backend may
        compute them more directly)."""
        return canonical_gradients(self.trace(x, targets, masks), self.spec)

    # -- hooks ------------------------------------------------------------------------------

    def forward(self, x: np.ndarray, masks: list[np.ndarray] | None = None):
        """(Z_1..Z_L, A_1..A_L), two lists of the framework's own tensors (A_l after dropout)."""
        raise NotImplementedError

    def loss(self, z_out, a_out, targets: np.ndarray):
        """The mean batch loss plus the L2 penalty, a framework scalar, from Z_L and A_L as
        :meth:`forward` returns them (the loss reads the logits Z_L for BCE/CCE, A_L for MSE)."""
        raise NotImplementedError

    def trace(self, x: np.ndarray, targets: np.ndarray,
              masks: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """One forward and backward pass of the whole model: ``loss`` and every Z, A, dZ, dA,
        dW, db (no parameter update)."""
        raise NotImplementedError

    def layer_trace(self, layer: int, a_prev: np.ndarray, upstream: np.ndarray,
                    mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Layer ``layer`` alone, fed A_{l−1} = ``a_prev``: Z, A, and the backward pass from
        ``upstream`` — dA_l for a hidden layer, the targets Y for the output layer (whose loss
        gives dZ_L). Returns Z, A, dZ, dW (incl. λW), db, dA_prev. Used to localize a mismatch:
        each layer gets the reference's own inputs, so error does not simply propagate."""
        raise NotImplementedError

    def train_step(self, x: np.ndarray, targets: np.ndarray,
                   masks: list[np.ndarray] | None = None) -> float:
        """One optimizer step on (x, targets); returns the loss before the update."""
        raise NotImplementedError

    def apply_gradients(self, gradients: list[np.ndarray]) -> None:
        """One update of the framework's own optimizer from the given [dW_1, db_1, …]."""
        raise NotImplementedError

    def optimizer_state(self) -> OptimizerState:
        """A copy of the optimizer's state, in canonical form."""
        raise NotImplementedError

    def load_state(self, weights, biases, state: OptimizerState, *, tensors=None) -> None:
        """Set the parameters (named ``tensors``, or the (W, b) lists) and the optimizer's state
        (re-synchronize to another backend)."""
        self.restore(given_tensors(self.spec, weights, biases, tensors, self.name), state)

    def restore(self, tensors: list[dict], state: OptimizerState) -> None:
        """:meth:`load_state` from named tensors."""
        raise NotImplementedError

    def tensors(self) -> list[dict[str, np.ndarray]]:
        """Copies of {name: array} of every layer with parameters (``spec.parameter_layers``),
        declared names and canonical layout."""
        raise NotImplementedError

    def parameters(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Copies of [W_l], [b_l] of every layer with parameters, in canonical layout: a view of
        :meth:`tensors` for a stack of (W, b)-shaped layers (a SpecError names any other)."""
        names, tensors = pair_names(self.spec), self.tensors()
        return ([layer[w] for layer, (w, _) in zip(tensors, names, strict=True)],
                [layer[b] for layer, (_, b) in zip(tensors, names, strict=True)])

    def statistics(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Copies of (running mean, running variance) of every batch_norm layer, (C,) each."""
        if self.spec.statistics_layers:
            raise NotImplementedError
        return []

    def inference(self, x: np.ndarray) -> np.ndarray:
        """A_L in inference mode: no dropout, BatchNorm normalizing by its running statistics."""
        return self.inference_outputs(x)[1]

    def inference_outputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Z_L, A_L) in inference mode, as :meth:`inference` (``check`` compares both)."""
        raise NotImplementedError
