"""An optimizer's state in one canonical form, so any backend can be re-synchronized to another.

``OptimizerState(t, slots)``: ``t`` is the number of updates already applied, ``slots[i]`` the
per-parameter buffers of the i-th parameter in canonical order (W_1, b_1, W_2, b_2, …), each in
the canonical layout of that parameter and named as in :mod:`scratch.optimizers`:

    m   Adam's first moment                     (torch ``exp_avg``, Keras ``momentums``, optax ``mu``)
    s   the second moment / running mean of g²  (torch ``exp_avg_sq`` / ``square_avg``,
                                                 Keras ``velocities``, optax ``nu``)
    v   the momentum buffer                     (torch ``momentum_buffer``, Keras ``momentums``,
                                                 optax ``trace``)

Each framework keeps the buffers of *its own* convention (Keras's momentum buffer is −η times
torch's; optax's RMSprop trace is −Keras's v, which the JAX twin's table flips), so a state is
only ever moved between a framework and the NumPy engine running that framework's convention.
Each backend maps these names to its framework's in one table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class OptimizerState:
    t: int = 0
    slots: list[dict[str, np.ndarray]] = field(default_factory=list)

    def copy(self) -> OptimizerState:
        return OptimizerState(self.t, [{name: np.array(buffer, copy=True) for name, buffer in slot.items()}
                                       for slot in self.slots])


def flat_tensors(spec, tensors) -> list[np.ndarray]:
    """[every trainable tensor] of named ``tensors`` ({name: array} per layer with parameters), in
    the optimizer's order (declaration order, layer by layer)."""
    return [layer[name] for layer, names in zip(tensors, spec.parameter_names, strict=True) for name in names]


def canonical_parameters(backend) -> list[np.ndarray]:
    """[W_1, b_1, …, W_L, b_L] of a backend (every trainable tensor of every layer with parameters,
    declaration order: α_l of a PReLU): the canonical order of parameters and buffers."""
    return flat_tensors(backend.spec, backend.tensors())


def canonical_gradients(trace: dict, spec) -> list[np.ndarray]:
    """[the gradient of every trainable tensor of every layer with parameters] from a trace, in
    the optimizer's order (dW_l, db_l of a dense layer; dalpha_l of a PReLU): the gradients an
    update is fed (``spec.gradient_names``)."""
    return [trace[name] for names in spec.gradient_names for name in names]
