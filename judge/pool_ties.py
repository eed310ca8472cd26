"""Max-pool ties that rounding breaks differently in two backends: found, named, and checked around.

A max-pool window sends its gradient to one element, its first maximum (the engine, torch and
JAX agree on that rule; ``parity_tests/frameworks/test_jax_max_pool_ties.py``). Where two
elements of a window are exactly equal in one backend and an ulp apart in the other (blank regions
of a digit make such ties: measured on lenet5, float64, torch, step 5 of 16-digit batches: A3
held 0.001914194587156266 twice in the engine, …658 and …665 in torch), each backend is right and
the two send dZ_l to different positions: dA_{l−1} differs by whole gradient values there, and
every gradient below inherits it — a relative error of ~1e-2 that says nothing about backprop.

**Found** (:func:`tie_flips`): for each max-pool layer l, the windows of A_{l−1} whose first
maximum differs between the two traces, each a tie within rounding: in both traces the values at
the two choices are within the forward bound × max|A_{l−1}| of each other (a flip with a larger
gap is no tie and is left to fail).

**Checked around** (:func:`rerouted_reference`): the reference backend's backward is re-run layer
by layer (``layer_trace``, as localization does) from the highest flipped pool down to layer 1,
each max-pool layer fed the *actual* backend's input A_{l−1}, so that it routes as the actual did,
every other layer fed the reference's own. The actual's gradients below that pool are then
compared with this re-run at the usual bounds: a bug below the pool still fails, and a backend
that breaks an *exact* tie the other way (a different rule, not rounding) still fails too, since
the re-run on exactly tied values chooses as the reference does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from judge.tolerances import tolerance
from scratch.layers.pooling import MaxPool2D


@dataclass(frozen=True)
class TieFlip:
    """The windows of one max-pool layer whose first maximum differs within rounding."""

    layer: int                  # the max-pool layer (numbered)
    windows: int                # how many windows flipped
    where: tuple                # the first such window (n, c, y, x)
    values: tuple[float, float]  # the reference's values at its own choice and at the actual's
    actual_values: tuple[float, float]   # the actual's values at the same two positions

    def gaps_ulp(self, dtype: str) -> tuple[float, float]:
        """How far apart the two values are in the reference and in the actual, each in ulps of
        ``dtype`` at the larger of the two: |a − b| / spacing(max(|a|, |b|))."""
        def gap(pair):
            a, b = (np.asarray(v, dtype=dtype) for v in pair)
            return float(abs(a - b) / np.spacing(max(abs(a), abs(b))))

        return gap(self.values), gap(self.actual_values)

    def describe(self) -> str:
        return (f"layer {self.layer} (max-pool): {self.windows} window(s) tied within rounding routed "
                f"differently, e.g. {list(self.where)}: the reference's first maximum and the actual's "
                f"are {self.values[0]!r}, {self.values[1]!r} in the reference and "
                f"{self.actual_values[0]!r}, {self.actual_values[1]!r} in the actual")


def _pool(spec, layer: int) -> MaxPool2D | None:
    layer_spec = spec.numbered_layers[layer - 1]
    if layer_spec.kind != "max_pool2d":
        return None
    return MaxPool2D(layer_spec.pool_size, layer_spec.strides)


def _first_maxima(pool: MaxPool2D, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the windows (m, C, H_out, W_out, p_h·p_w), the index of each window's first maximum)."""
    windows = pool.windows(a)
    flat = windows.reshape(*windows.shape[:4], -1)
    return flat, flat.argmax(axis=4)


def tie_flips(actual: dict, desired: dict, spec, x: np.ndarray, dtype: str) -> list[TieFlip]:
    """Every max-pool layer whose windows are routed differently in the two traces, each flip a
    tie within rounding (see the module docstring); [] if any flip is not."""
    bound = tolerance(dtype, "forward")
    flips = []
    for layer in range(1, spec.n_layers + 1):
        pool = _pool(spec, layer)
        if pool is None:
            continue
        name = f"A{layer - 1}"
        a_desired = x if layer == 1 else desired.get(name)
        a_actual = x if layer == 1 else actual.get(name)
        if a_desired is None or a_actual is None or np.shape(a_desired) != np.shape(a_actual):
            continue
        values, chosen = _first_maxima(pool, np.asarray(a_desired))
        actual_values, theirs = _first_maxima(pool, np.asarray(a_actual))
        flipped = np.argwhere(chosen != theirs)
        if not len(flipped):
            continue
        for window_values, a in ((values, a_desired), (actual_values, a_actual)):
            at_ours = np.take_along_axis(window_values, chosen[..., None], axis=4)[..., 0]
            at_theirs = np.take_along_axis(window_values, theirs[..., None], axis=4)[..., 0]
            if not np.all(np.abs(at_ours - at_theirs)[chosen != theirs] <= bound * float(np.max(np.abs(a)))):
                return []
        first = tuple(int(i) for i in flipped[0])
        pair = (chosen[first], theirs[first])
        flips.append(TieFlip(layer, len(flipped), first, tuple(float(values[first][i]) for i in pair),
                             tuple(float(actual_values[first][i]) for i in pair)))
    return flips


def rerouted_reference(desired_backend, actual: dict, desired: dict, x: np.ndarray, masks,
                       flips: list[TieFlip]) -> tuple[dict, set[str]]:
    """(the reference trace with every gradient below the highest flipped pool re-run with the
    actual's routing, the names replaced); a pool is never the output layer, so no targets."""
    spec = desired_backend.spec
    top = max(flip.layer for flip in flips)
    rerouted, replaced = dict(desired), set()
    upstream = desired[f"dA{top}"]
    for layer in range(top, 0, -1):
        own = x if layer == 1 else desired[f"A{layer - 1}"]
        a_prev = own if _pool(spec, layer) is None or layer == 1 else actual[f"A{layer - 1}"]
        mask = None if masks is None else masks[layer - 1]
        out = desired_backend.layer_trace(layer, a_prev, upstream, mask)
        # dZ, the gradient d<name> of each trainable tensor (dW, db; dgamma, dbeta; …), dA_prev
        for key in (key for key in out if key.startswith("d")):
            name = f"dA{layer - 1}" if key == "dA_prev" else f"{key}{layer}"
            if name in desired:
                rerouted[name] = out[key]
                replaced.add(name)
        upstream = out.get("dA_prev")
    return rerouted, replaced
