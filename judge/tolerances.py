"""The one tolerance table.

Every comparison uses the normwise relative error of a quantity,

    err(actual, desired) = max|actual − desired| / max|desired|     (desired: the reference)

(with max|desired| = 0 the absolute error is used), so elements near zero do not need an atol of
their own. Where a quantity can be far smaller than the operands it was computed from — dZ_l
behind a saturated activation, a fused output's A − Y, dW_l and db_l built from them, a loss
much smaller than its logits — the denominator is floored at that operand scale (see
``judge.parity.dz_floor`` and ``gradient_floors``): rounding is relative to the operands.

Measured floors on this machine (float64): 1e-16–1e-15 for every forward quantity and
gradient and for training curves; (float32): ~1e-6 forward, ~1e-6–1e-5 gradients. The float64
bound stays at 1e-13, no looser; float32 bounds are the issue's measured 1e-5 / 1e-4.
Tests may override a bound only with an explicit argument. :func:`relative_error` is that
measure, here beside the bounds it is held to.
"""

from __future__ import annotations

import numpy as np

TOLERANCES: dict[str, dict[str, float]] = {
    "float64": {"forward": 1e-13, "gradient": 1e-13, "curve": 1e-13, "parameters": 1e-13},
    "float32": {"forward": 1e-5, "gradient": 1e-4, "curve": 1e-4, "parameters": 1e-4},
}

# Per-step update check (judge.stepwise): an optimizer update fed identical gradients and
# state agrees elementwise within this many units in the last place of its operands.
ULPS_UPDATE = 8

# Free-running trajectories (judge.trajectory). An adaptive step "amplifies" a gradient
# element when its sensitivity |∂θ′/∂g| is at least AMPLIFIED times the learning rate (plain
# SGD's sensitivity). Where no rounding cause explains a parting, the actual backend passes when
# its distance to the higher-precision arbiter is at most ARBITER_FACTOR times the reference's
# own distance plus the parameters bound.
AMPLIFIED = 10.0
ARBITER_FACTOR = 4.0

# The long run (a full MNIST epoch, 938 steps) is held to this in float64.
FULL_EPOCH_FLOAT64 = 1e-12


def tolerance(dtype: str, kind: str) -> float:
    """The bound for ``kind`` (forward, gradient, curve, parameters) in ``dtype``."""
    return TOLERANCES[dtype][kind]


def relative_error(actual: np.ndarray, desired: np.ndarray, floor: float = 0.0) -> float:
    """max|actual − desired| / max(max|desired|, floor) (absolute error where that is zero).

    ``floor`` is the size of the operands a quantity was computed from, where that can exceed
    the quantity itself (see :func:`dz_floor`)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    if desired.size == 0:
        return 0.0
    diff = np.max(np.abs(actual - desired))
    scale = max(float(np.max(np.abs(desired))), floor)
    if not np.isfinite(diff):
        return float("inf")
    return float(diff / scale) if scale > 0 else float(diff)
