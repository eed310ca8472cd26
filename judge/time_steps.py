"""Where two recurrent passes part in time (issue 22): the first time step, in the order the steps
were computed, at which a per-step quantity of one side leaves the other's tolerance.

A recurrent layer's forward pass computes h_1, h_2, …, h_T; its backward pass (BPTT) computes the
state gradients δh_T, δh_{T−1}, …, δh_1, each from the one after it. A mistake at one step spreads
to every step computed after it, so the step to name is the first one *in computation order* that
differs — step 1 onwards for states, step T backwards for state gradients. Naming the earliest
index instead would blame, for a backward bug at step T − 1, the step 1 that merely inherited it.

Each step is measured against the sequence's scale, max over every step of |desired|: state
gradients vanish or explode along the sequence (each step multiplies by W_hh and the gates'
derivatives), and a step whose own values are a millionth of the largest still carries the
rounding of the larger steps it was computed from, so its error is judged against that size
(as ``judge.parity.dz_floor`` judges a saturated unit against its upstream gradient).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from judge.tolerances import relative_error


class StepApart(NamedTuple):
    """The first step (1-based, as h_1 … h_T) outside tolerance, its error, and every step's
    error in step order (for a table)."""

    step: int
    error: float
    errors: tuple[float, ...]


def step_errors(actual: np.ndarray, desired: np.ndarray) -> tuple[float, ...]:
    """Each step's max |actual − desired| over the sequence's scale, steps 1 … T, for per-step
    quantities (m, T, …) of the same shape."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    if actual.shape != desired.shape or actual.ndim < 2:
        raise ValueError(f"per-step quantities (m, T, …) of one shape expected, got {actual.shape} "
                         f"and {desired.shape}")
    scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    return tuple(relative_error(actual[:, t], desired[:, t], floor=scale) for t in range(desired.shape[1]))


def first_step_apart(actual: np.ndarray, desired: np.ndarray, tolerance: float, *,
                     backward: bool = False) -> StepApart | None:
    """The first step in computation order (1 … T, or T … 1 for a ``backward`` quantity such as
    δh_t) whose error exceeds ``tolerance``; None when every step is within it."""
    errors = step_errors(actual, desired)
    order = range(len(errors) - 1, -1, -1) if backward else range(len(errors))
    for t in order:
        if not errors[t] <= tolerance:                         # a NaN is never within tolerance
            return StepApart(t + 1, errors[t], errors)
    return None
