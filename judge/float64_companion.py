"""A float32 model with long reductions, checked in float64 as well.

A BatchNorm, LayerNorm or global average pooling over n values carries a float32 rounding error
that grows like n·u (``docs/reductions.md``: TensorFlow's sequential per-channel sums, 2.6e-3 at
10⁶ values). A real error of the layer smaller than that — a mean that drops one of 10⁵ values
(3.7e-6), the unbiased variance in the normalization at 10⁵ (5.0e-6) — is then below anything a
float32 comparison can tell from rounding. In float64 the same layer rounds 2⁻²⁹ times less, and
such an error stands out by three orders of magnitude or more at every size.

:func:`float64_rows` therefore compares every pair it is given of a float32 spec that holds such a
layer once more, the same backends (their own classes) in float64 with the parameters, running statistics
and batch cast up exactly, through :func:`judge.parity.compare_backend_traces` (float64's
bounds, a long reduction judged by its float64 bound). ``check`` adds these rows under the pair's
label with `` f64``. (``parity.compare_backend_traces`` is looked up at each call, as ``check``
does, so a test that replaces it for one run does not leave it replaced here.)
"""

from __future__ import annotations

import numpy as np

from judge import parity
from judge.explained import rebuilt_in
from judge.reduction_bounds import REDUCING

SUFFIX = " f64"


def needs_float64(spec) -> bool:
    """A float32 spec with a layer whose statistics sum many values (BatchNorm, LayerNorm, global
    average pooling)."""
    return spec.dtype == "float32" and any(layer.kind in REDUCING for layer in spec.numbered_layers)


def float64_rows(backends: dict, x, targets, masks, pairs) -> list[tuple[str, parity.Comparison]]:
    """(pair label + :data:`SUFFIX`, comparison) of every (actual, desired) name pair of ``pairs``
    (the caller's, e.g. ``twins.backends.PAIRS``) among ``backends`` (a name → backend dict of one
    float32 spec), traced again in float64."""
    if not backends:
        return []
    spec64 = next(iter(backends.values())).spec.replace(dtype="float64")
    rebuilt = {name: rebuilt_in(backend, spec64) for name, backend in backends.items()}
    x64, targets64 = np.asarray(x, np.float64), np.asarray(targets, np.float64)
    masks64 = None if masks is None else [None if m is None else np.asarray(m, np.float64) for m in masks]
    traces = {name: twin.trace(x64, targets64, masks64) for name, twin in rebuilt.items()}
    rows = []
    for actual, desired in pairs:
        if actual in traces and desired in traces:
            rows += [(f"{actual} vs {desired}{SUFFIX}", c) for c in parity.compare_backend_traces(
                traces[actual], traces[desired], rebuilt[desired], x64, masks64, targets=targets64,
                actual_backend=rebuilt[actual])]
    return rows
