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


def canonical_parameters(backend) -> list[np.ndarray]:
    """[W_1, b_1, …, W_L, b_L] of a backend: the canonical order of parameters and buffers."""
    weights, biases = backend.parameters()
    return interleave(weights, biases)


def interleave(weights, biases) -> list[np.ndarray]:
    """[W_1, b_1, W_2, b_2, …] from [W_1, W_2, …] and [b_1, b_2, …]."""
    return [p for pair in zip(weights, biases, strict=True) for p in pair]


def canonical_gradients(trace: dict, layers) -> list[np.ndarray]:
    """[dW_l, db_l for l in ``layers``] from a trace: the gradients an update is fed
    (``layers`` is ``spec.parameter_layers``, the layers with parameters)."""
    return [trace[f"{kind}{layer}"] for layer in layers for kind in ("dW", "db")]
