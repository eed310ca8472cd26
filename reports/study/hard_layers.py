"""The hard layers step by step, each with the numbers of one training step
(:class:`reports.study.run.StudyRun`): what the engine's compact formula hides, computed here the
long way from the run's own arrays and checked against the engine.

* **BatchNorm** (the model's first batch_norm layer l, x = A_{l−1}, dy = dZ_l) as its staged graph

      x → μ → x − μ → σ² → 1/σ = 1/√(σ² + ε) → x̂ = (x − μ)·(1/σ) → y = γ·x̂ + β

  and its backward one stage at a time, each the local rule of one edge (:data:`BN_FORWARD`,
  :data:`BN_BACKWARD`): dβ = Σ dy, dγ = Σ dy·x̂, dx̂ = dy·γ, d(1/σ) = Σ dx̂·(x − μ),
  dσ² = −½·d(1/σ)·(1/σ)³, d(x − μ) = dx̂·(1/σ) + dσ²·2(x − μ)/n, dμ = −Σ d(x − μ),
  dx = d(x − μ) + dμ/n (sums per channel over its n values). x − μ and x each feed two stages,
  so their gradients are sums of two. The staged dx is then compared with the engine's compact
  dx = (γ/σ)·(dy − mean(dy) − x̂·mean(dy·x̂)).
* **softmax + cross-entropy**: the fused dZ = (A − Y)/m beside the separate chain
  dA = −Y/(m·A) followed by the softmax Jacobian dZ = A ⊙ (dA − Σ_row dA ⊙ A); equal on the batch,
  but at logits scaled ×100 or ×1000 A underflows to 0 at the target class and the separate
  path divides by it (inf, then inf·0 = NaN), while the fused one never divides.
* **max-pool routing**: one window's values, its gradient, the input it goes to (the first
  maximum in row-major order, the engine's and torch's rule, ``scratch.layers.pooling``) and
  how many windows of the batch hold a tie; the whole layer's routing redone here with
  ``argmax`` (which also takes the first maximum) and compared with the engine's dA_{l−1}.
* **convolution as im2col**: the column matrix X_col (C·k_h·k_w, m·H_out·W_out) built here
  (columns in (n, y, x) order, the engine's are (y, x, n)), then one GEMM each way:
  Z = W_col·X_col + b, dW = dZ_col·X_colᵀ (+ λW), dX_col = W_colᵀ·dZ_col and col2im, each
  compared with the run's Z_l, dW_l, db_l and dA_{l−1}.
* **dropout**: the mask D_l of the first hidden layer that drops: its rate p, the kept fraction
  in this batch, the scale 1/(1 − p) of its kept entries, A_l = H_l ⊙ D_l and dZ_l = 0 where
  dropped.
* **L2**: (λ/2)·Σ‖W_l‖² added to the loss and λ·W_l to each dW_l (both kernels of a recurrent
  layer), against the data gradient (the engine's backward without the penalty) of the same batch.
* **BPTT**: the first recurrent layer unrolled over time: every step's ‖h_t‖ and state gradient
  ‖δh_t‖ (and the LSTM's ‖δc_t‖) from the engine's own ``bptt``, and how ‖δh_t‖ shrinks or grows
  going back (:func:`bptt_data`).

A topic whose layer the model lacks is one line naming a catalog model that has it
(:mod:`scratch.catalog`). Every check is ``{quantity, against, max_abs, relative, bound, ok}``
with relative = max|Δ| / max|engine| and the tolerance table's bound for the run's dtype
(``judge.tolerances``). :func:`hard_layers_data` is JSON-ready (no inf or NaN: a non-finite
number is None, and counted); :func:`hard_layers_blocks` turns it into report blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from judge.tolerances import tolerance
from reports.render.blocks import Details, Pre, Svg, Table
from reports.study import svg
from reports.study.formulas import formula
from reports.study.graph import DISPLAY, GraphBuilder, summary
from reports.study.run import StudyRun
from scratch.catalog import MODELS
from scratch.layer_specs import RECURRENT
from scratch.layers.conv import padding_amounts
from scratch.tensor_specs import gradient_name

SCALES = (1.0, 100.0, 1000.0)
"""The factors the batch's output logits are scaled by in the softmax comparison."""


# ------------------------------------------------------------------------------------ helpers

def _finite(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def check(quantity: str, against: str, mine, engine, dtype: str, kind: str = "gradient") -> dict:
    """``mine`` (computed here) against ``engine`` (the run's): max|Δ|, max|Δ|/max|engine| and
    the tolerance table's bound; ``ok`` when the relative error is within it."""
    mine, engine = np.asarray(mine, np.float64), np.asarray(engine, np.float64)
    if mine.shape != engine.shape:
        raise ValueError(f"hard layers: {quantity} is {mine.shape} here but {engine.shape} in the engine")
    difference = float(np.max(np.abs(mine - engine))) if mine.size else 0.0
    scale = float(np.max(np.abs(engine))) if engine.size else 0.0
    relative = difference / scale if scale else difference
    bound = tolerance(dtype, kind)
    return {"quantity": quantity, "against": against, "max_abs": _finite(difference),
            "relative": _finite(relative), "bound": bound, "ok": bool(relative <= bound)}


def _layers_of(run: StudyRun, kind: str) -> list[int]:
    return [number for number, layer in enumerate(run.spec.numbered_layers, start=1) if layer.kind == kind]


def _input(run: StudyRun, layer: int) -> np.ndarray:
    """A_{l−1} of the run (X for l = 1)."""
    return run.x if layer == 1 else run.forward.a[layer - 2]


def _catalog_with(predicate: Callable) -> list[str]:
    """The catalog models whose spec satisfies ``predicate``, in catalog order."""
    return [name for name, model in MODELS.items() if predicate(model.spec())]


def _absent(what: str, predicate: Callable, otherwise: str) -> dict:
    """The one line of a topic whose layer the model lacks, naming catalog models that have it."""
    names = _catalog_with(predicate)
    plural = len(names) > 1
    where = (f"catalog model{'s' if plural else ''} {', '.join(names[:2])} {'have' if plural else 'has'} one"
             if names else f"no catalog model has one: {otherwise}")
    return {"absent": f"This model has no {what}; {where}."}


def _has_kind(kind: str) -> Callable:
    return lambda spec: any(layer.kind == kind for layer in spec.numbered_layers)


# ---------------------------------------------------------------------------- BatchNorm staged

@dataclass(frozen=True)
class Stage:
    """One stage of the staged BatchNorm: the node it computes, its math, and how (from the
    values so far: the stages before it, x, dy, γ, β, ε, n and the reduction axes)."""

    name: str
    math: str
    compute: Callable[[dict], np.ndarray]
    per_channel: bool = False


def _mean(v: dict, values: np.ndarray) -> np.ndarray:
    return values.mean(axis=v["axes"], keepdims=True)


def _sum(v: dict, values: np.ndarray) -> np.ndarray:
    return values.sum(axis=v["axes"], keepdims=True)


BN_FORWARD = (
    Stage("μ", "μ = (1/n)·Σ x", lambda v: _mean(v, v["x"]), True),
    Stage("x−μ", "x − μ", lambda v: v["x"] - v["μ"]),
    Stage("σ²", "σ² = (1/n)·Σ (x − μ)²", lambda v: _mean(v, v["x−μ"] * v["x−μ"]), True),
    Stage("1/σ", "1/σ = 1/√(σ² + ε)", lambda v: 1.0 / np.sqrt(v["σ²"] + v["ε"]), True),
    Stage("x̂", "x̂ = (x − μ)·(1/σ)", lambda v: v["x−μ"] * v["1/σ"]),
    Stage("y", "y = γ·x̂ + β", lambda v: v["γ"] * v["x̂"] + v["β"]),
)
"""The forward stages, in order (Σ and mean per channel, over its n values)."""

BN_BACKWARD = (
    Stage("dβ", "dβ = Σ dy", lambda v: _sum(v, v["dy"]), True),
    Stage("dγ", "dγ = Σ dy·x̂", lambda v: _sum(v, v["dy"] * v["x̂"]), True),
    Stage("dx̂", "dx̂ = dy·γ", lambda v: v["dy"] * v["γ"]),
    Stage("d(1/σ)", "d(1/σ) = Σ dx̂·(x − μ)", lambda v: _sum(v, v["dx̂"] * v["x−μ"]), True),
    Stage("dσ²", "dσ² = d(1/σ)·(−½)(σ² + ε)^(−3/2) = −½·d(1/σ)·(1/σ)³",
          lambda v: -0.5 * v["d(1/σ)"] * v["1/σ"] ** 3, True),
    Stage("d(x−μ)", "d(x − μ) = dx̂·(1/σ) + dσ²·2(x − μ)/n   (x − μ feeds x̂ and σ²: two gradients summed)",
          lambda v: v["dx̂"] * v["1/σ"] + v["dσ²"] * (2.0 / v["n"]) * v["x−μ"]),
    Stage("dμ", "dμ = −Σ d(x − μ)", lambda v: -_sum(v, v["d(x−μ)"]), True),
    Stage("dx", "dx = d(x − μ) + dμ/n   (x feeds x − μ and μ: two gradients summed)",
          lambda v: v["d(x−μ)"] + v["dμ"] / v["n"]),
)
"""The backward stages, in the order they run (each needs only the ones before it)."""

# the staged graph: (producer, consumer, the backward edge's local rule); every edge runs both ways
BN_EDGES = (
    ("x", "μ", "dμ/n to every x"),
    ("x", "x−μ", "d(x − μ) passes on"),
    ("μ", "x−μ", "dμ = −Σ d(x − μ)"),
    ("x−μ", "σ²", "dσ²·2(x − μ)/n"),
    ("σ²", "1/σ", "dσ² = −½·d(1/σ)·(1/σ)³"),
    ("x−μ", "x̂", "dx̂·(1/σ)"),
    ("1/σ", "x̂", "d(1/σ) = Σ dx̂·(x − μ)"),
    ("x̂", "y", "dx̂ = dy·γ"),
    ("γ", "y", "dγ = Σ dy·x̂"),
    ("β", "y", "dβ = Σ dy"),
)
BN_OPS = {"x": "input", "μ": "mean", "x−μ": "subtract", "σ²": "mean of squares", "1/σ": "1/√(· + ε)",
          "x̂": "multiply", "y": "γ·x̂ + β", "γ": "parameter", "β": "parameter"}


def staged_batch_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float,
                      dy: np.ndarray) -> dict[str, np.ndarray]:
    """Every stage's array (:data:`BN_FORWARD`, then :data:`BN_BACKWARD`), in ``x``'s dtype;
    per-channel ones keep their reduced axes (shape (1, C) or (1, C, 1, 1))."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    per_channel = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
    dtype = x.dtype.type
    v = {"x": x, "dy": dy, "γ": gamma.reshape(per_channel), "β": beta.reshape(per_channel),
         "ε": dtype(epsilon), "n": dtype(x.size // x.shape[1]), "axes": axes}
    for stage in BN_FORWARD + BN_BACKWARD:
        v[stage.name] = stage.compute(v)
    return v


def batch_norm_data(run: StudyRun) -> dict:
    """The first batch_norm layer's staged forward and backward, its graph and the checks."""
    layers = _layers_of(run, "batch_norm")
    if not layers:
        return _absent("batch_norm layer", _has_kind("batch_norm"),
                       "give a spec with one (`--spec FILE.json`)")
    layer = layers[0]
    engine = run.network.layers[layer - 1]
    x, dy, dtype = _input(run, layer), run.gradients.dz[layer - 1], run.spec.dtype
    v = staged_batch_norm(x, engine.gamma, engine.beta, engine.epsilon, dy)
    stages = []
    for stage in BN_FORWARD + BN_BACKWARD:
        value = v[stage.name].reshape(-1) if stage.per_channel else v[stage.name]
        stages.append({"name": stage.name, "math": stage.math, "shape": list(value.shape),
                       "summary": summary(value), "backward": stage in BN_BACKWARD})
    dgamma, dbeta = run.gradients.dp[layer - 1]
    if layer > 1:
        dx_engine, against = run.gradients.da[layer - 1], f"dA{layer - 1} of the run (compact formula)"
    else:
        dx_engine = engine.backward(dy, run.forward.caches[layer - 1])[2]
        against = "BatchNorm.backward on the run's cache (the run computes no dX for its input)"
    compact = formula(engine, "dA_prev")
    checks = [check("y", f"Z{layer} of the run", v["y"], run.forward.z[layer - 1], dtype, "forward"),
              check("dγ", f"dgamma{layer} of the run", v["dγ"].reshape(-1), dgamma, dtype),
              check("dβ", f"dbeta{layer} of the run", v["dβ"].reshape(-1), dbeta, dtype),
              check("dx", against, v["dx"], dx_engine, dtype)]
    return {"layer": layer, "shape": list(x.shape), "channels": int(x.shape[1]),
            "n": int(x.size // x.shape[1]), "epsilon": float(engine.epsilon), "stages": stages,
            "compact": {"math": compact.math, "line": compact.line, "where": compact.where},
            "checks": checks, "graph": batch_norm_graph(run, layer, v)}


def batch_norm_graph(run: StudyRun, layer: int, v: dict) -> dict:
    """The staged graph laid out (``reports.study.graph.layout``): every value with its gradient,
    every backward edge with its local rule; y's gradient is the run's dZ_l."""
    b = GraphBuilder(run)
    per_channel = {stage.name for stage in BN_FORWARD + BN_BACKWARD if stage.per_channel} | {"γ", "β"}
    gradient_of = {"x": "dx", "μ": "dμ", "x−μ": "d(x−μ)", "σ²": "dσ²", "1/σ": "d(1/σ)", "x̂": "dx̂",
                   "γ": "dγ", "β": "dβ", "y": "dy"}
    labels = {"x": f"A{layer - 1}" if layer > 1 else "X", "y": f"Z{layer}", "dy": f"dZ{layer}"}
    for name, grad in gradient_of.items():
        value, gradient = v[name], v[grad]
        if name in per_channel:
            value, gradient = value.reshape(-1), gradient.reshape(-1)
        shown = f"{name} = {labels[name]}" if name in labels else name
        b.node(name, BN_OPS[name], "parameter" if name in ("γ", "β") else "op", shown, value, gradient,
               grad_label=labels.get(grad, grad), grad_name=grad,
               side={"γ": "left", "β": "right"}.get(name), layer=layer)
    for producer, consumer, rule in BN_EDGES:
        b.forward(producer, consumer)
        b.backward(consumer, producer, rule)
    b.mark_reused()
    return b.graph()


# ------------------------------------------------------------------- softmax + cross-entropy

def softmax_data(run: StudyRun) -> dict:
    """The fused and the separate softmax + CE gradient on the batch, and at scaled logits."""
    if run.spec.loss != "cce":
        return _absent("softmax + cross-entropy output", lambda spec: spec.loss == "cce",
                       "give `--loss cce --output softmax`")
    layer, dtype = run.spec.n_layers, run.spec.dtype
    softmax = run.network.activations[-1]
    z, y = run.forward.z[-1], run.targets
    m = len(z)
    fused = (run.forward.a[-1] - y) / z.dtype.type(m)
    separate = _separate(softmax, run.forward.a[-1], y, m)
    scales = []
    for factor in SCALES:
        scaled = z * z.dtype.type(factor)
        a = softmax.forward(scaled.copy())
        exact = (a - y) / z.dtype.type(m)
        chain = _separate(softmax, a, y, m)
        bad = ~np.isfinite(chain)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_a = np.where(y > 0, y * np.log(a), 0.0)
        row = {"scale": factor, "max_logit": float(np.max(np.abs(scaled))),
               "min_target_probability": float(np.min(a[y > 0])),
               "fused_finite": bool(np.isfinite(exact).all()), "separate_nonfinite": int(bad.sum()),
               "size": int(chain.size),
               "loss_fused": _finite(run.network.loss_fn.value(scaled, a, y)),
               "loss_separate": _finite(-np.sum(log_a) / m)}
        finite = ~bad
        if finite.any():
            difference = float(np.max(np.abs(chain[finite] - exact[finite])))
            row["separate_max_abs"] = _finite(difference)
            row["separate_relative"] = _finite(difference / float(np.max(np.abs(exact))))
        else:
            row["separate_max_abs"] = row["separate_relative"] = None
        scales.append(row)
    fused_formula = formula(run.network.loss_fn, "dZ")
    jacobian = formula(softmax, "dZ")
    return {"layer": layer, "m": m, "classes": int(z.shape[1]),
            "fused_math": fused_formula.math, "jacobian_math": jacobian.math,
            "checks": [check("fused (A − Y)/m", f"dZ{layer} of the run", fused, run.gradients.dz[-1],
                             dtype),
                       check("separate: −Y/(m·A), then the Jacobian", "the fused (A − Y)/m", separate,
                             fused, dtype)],
            "scales": scales}


def _separate(softmax, a: np.ndarray, y: np.ndarray, m: int) -> np.ndarray:
    """dZ the long way: dA = −Y/(m·A) (the CE's own gradient), then the engine's softmax
    Jacobian ``Softmax.backward``; inf and NaN kept where A underflows to 0."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        da = -y / (a * a.dtype.type(m))
        return softmax.backward(None, a, da)


# ----------------------------------------------------------------------------- max-pool routing

def max_pool_data(run: StudyRun) -> dict:
    """One window's routing, the batch's ties, and the whole layer's routing rechecked."""
    layers = _layers_of(run, "max_pool2d")
    if not layers:
        return _absent("max-pool layer", _has_kind("max_pool2d"), "give a spec with one")
    layer = layers[0]
    pool = run.network.layers[layer - 1]
    x, dz = _input(run, layer), run.gradients.dz[layer - 1]
    (p_h, p_w), s = pool.pool, pool.stride
    h_out, w_out = dz.shape[2:]
    windows = np.stack([x[:, :, i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s]
                        for i in range(p_h) for j in range(p_w)], axis=-1)   # (m, C, H_out, W_out, p_h·p_w)
    first = first_maximum(windows)
    maxima = windows.max(axis=-1, keepdims=True)
    tied = (windows == maxima).sum(axis=-1) > 1
    all_zero = tied & (maxima[..., 0] == 0) & (windows == 0).all(axis=-1)
    routed = np.zeros_like(x)
    for k in range(p_h * p_w):
        i, j = divmod(k, p_w)
        routed[:, :, i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s] += np.where(first == k, dz, 0)
    if layer > 1:
        engine, against = run.gradients.da[layer - 1], f"dA{layer - 1} of the run"
    else:
        engine, against = pool.backward(dz, x), "MaxPool2D.backward (the run computes no dX for its input)"
    where = _chosen_window(tied, all_zero, dz)
    n, c, wy, wx = where
    rows, cols = slice(wy * s, wy * s + p_h), slice(wx * s, wx * s + p_w)
    window = {"where": list(where), "values": x[n, c, rows, cols].tolist(), "dz": float(dz[where]),
              "chosen": list(divmod(int(first[where]), p_w)),
              "maxima": int((windows[where] == maxima[where]).sum()),
              "engine_dx": engine[n, c, rows, cols].tolist() if s >= max(p_h, p_w) else None}
    return {"layer": layer, "pool": [p_h, p_w], "stride": s, "windows": int(first.size),
            "ties": int(tied.sum()), "zero_ties": int(all_zero.sum()),
            "ties_with_gradient": int((tied & (dz != 0)).sum()),
            "nonzero_ties_with_gradient": int((tied & ~all_zero & (dz != 0)).sum()), "window": window,
            "checks": [check("dX routed to each window's first maximum (argmax)", against, routed, engine,
                             run.spec.dtype)]}


def first_maximum(windows: np.ndarray) -> np.ndarray:
    """The offset k = i·p_w + j of each window's gradient: ``argmax`` over the window's values in
    row-major order, which returns the first maximum on a tie (the engine's rule)."""
    return windows.argmax(axis=-1)


def _chosen_window(tied: np.ndarray, all_zero: np.ndarray, dz: np.ndarray) -> tuple[int, ...]:
    """The window shown: a tie between non-zero values with a gradient, else any tie with a
    gradient, else the window with the largest |dZ|."""
    for candidates in (tied & ~all_zero & (dz != 0), tied & (dz != 0)):
        if candidates.any():
            return tuple(int(i) for i in np.argwhere(candidates)[0])
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(dz))), dz.shape))


# --------------------------------------------------------------------------- convolution as GEMM

def im2col(x: np.ndarray, kernel: tuple[int, int], stride: int, dilation: int,
           pads: tuple[int, int, int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """(X_col (C·k_h·k_w, m·H_out·W_out), (H_out, W_out)): row (c, i, j) holds
    X_p[n, c, y·s + i·d, x·s + j·d] at column (n, y, x)."""
    top, bottom, left, right = pads
    x_p = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    k_h, k_w = kernel
    h_out = (x_p.shape[2] - dilation * (k_h - 1) - 1) // stride + 1
    w_out = (x_p.shape[3] - dilation * (k_w - 1) - 1) // stride + 1
    m, channels = x.shape[:2]
    columns = np.empty((channels, k_h, k_w, m, h_out, w_out), x.dtype)
    for i in range(k_h):
        for j in range(k_w):
            patch = x_p[:, :, i * dilation:i * dilation + stride * (h_out - 1) + 1:stride,
                        j * dilation:j * dilation + stride * (w_out - 1) + 1:stride]   # (m, C, H_out, W_out)
            columns[:, i, j] = patch.transpose(1, 0, 2, 3)
    return columns.reshape(channels * k_h * k_w, m * h_out * w_out), (h_out, w_out)


def col2im(d_columns: np.ndarray, shape: tuple[int, ...], kernel: tuple[int, int], stride: int,
           dilation: int, pads: tuple[int, int, int, int], out: tuple[int, int]) -> np.ndarray:
    """dX (m, C, H, W) from dX_col: each column's entries added back where :func:`im2col` read
    them (overlapping patches add), then the padding cut off."""
    m, channels, h, w = shape
    top, bottom, left, right = pads
    k_h, k_w = kernel
    h_out, w_out = out
    parts = d_columns.reshape(channels, k_h, k_w, m, h_out, w_out).transpose(1, 2, 3, 0, 4, 5)
    dx_p = np.zeros((m, channels, h + top + bottom, w + left + right), d_columns.dtype)
    for i in range(k_h):
        for j in range(k_w):
            dx_p[:, :, i * dilation:i * dilation + stride * (h_out - 1) + 1:stride,
                 j * dilation:j * dilation + stride * (w_out - 1) + 1:stride] += parts[i, j]
    return dx_p[:, :, top:top + h, left:left + w]


def conv_data(run: StudyRun) -> dict:
    """The first convolution whose dX the run computed (else the first) as im2col and GEMMs."""
    layers = _layers_of(run, "conv2d")
    if not layers:
        return _absent("convolution", _has_kind("conv2d"), "give a spec with a conv2d layer")
    layer = next((number for number in layers if number > 1), layers[0])
    conv, dtype = run.network.layers[layer - 1], run.spec.dtype
    x, dz = _input(run, layer), run.gradients.dz[layer - 1]
    w, b = conv.weight, conv.bias
    out_channels, channels, k_h, k_w = w.shape
    pads = padding_amounts(conv.padding, x.shape[2:], (k_h, k_w), conv.stride, conv.dilation)
    columns, (h_out, w_out) = im2col(x, (k_h, k_w), conv.stride, conv.dilation, pads)
    w_col = w.reshape(out_channels, -1)                                     # (O, C·k_h·k_w)
    z_col = w_col @ columns + b[:, None]                                    # (O, m·H_out·W_out)
    z = z_col.reshape(out_channels, len(x), h_out, w_out).transpose(1, 0, 2, 3)
    dz_col = dz.transpose(1, 0, 2, 3).reshape(out_channels, -1)             # (O, m·H_out·W_out)
    l2 = run.spec.l2 if layer in run.spec.kernel_layers else 0.0
    dw = (dz_col @ columns.T).reshape(w.shape) + w.dtype.type(l2) * w
    db = dz_col.sum(axis=1)
    dx = col2im(w_col.T @ dz_col, x.shape, (k_h, k_w), conv.stride, conv.dilation, pads, (h_out, w_out))
    if layer > 1:
        dx_engine, against = run.gradients.da[layer - 1], f"dA{layer - 1} of the run"
    else:
        dx_engine = conv.backward(dz, x)[2]
        against = "Conv2D.backward (the run computes no dX for its input)"
    run_dw, run_db = run.gradients.dp[layer - 1]
    return {"layer": layer, "x_shape": list(x.shape), "w_shape": list(w.shape), "stride": conv.stride,
            "dilation": conv.dilation, "padding": list(pads), "l2": l2,
            "columns_shape": list(columns.shape), "w_col_shape": list(w_col.shape),
            "dz_col_shape": list(dz_col.shape), "out": [h_out, w_out],
            "columns": summary(columns),
            "checks": [check("Z = W_col·X_col + b", f"Z{layer} of the run", z, run.forward.z[layer - 1],
                             dtype, "forward"),
                       check("dW = dZ_col·X_colᵀ" + (" + λW" if l2 else ""), f"dW{layer} of the run", dw,
                             run_dw, dtype),
                       check("db = Σ_columns dZ_col", f"db{layer} of the run", db, run_db, dtype),
                       check("dX = col2im(W_colᵀ·dZ_col)", against, dx, dx_engine, dtype)]}


# ----------------------------------------------------------------------------------- dropout

def dropout_data(run: StudyRun) -> dict:
    """The first hidden layer with a dropout mask this step."""
    rates = run.spec.dropout_rates
    layers = [number for number, rate in enumerate(rates, start=1) if rate]
    if not layers:
        return _absent("dropout", lambda spec: any(spec.dropout_rates), "give `--dropout P`")
    layer = layers[0]
    mask = None if run.masks is None else run.masks[layer - 1]
    if mask is None:
        return {"absent": f"Layer {layer} has dropout ({rates[layer - 1]:g}) but this step has no mask."}
    rate = rates[layer - 1]
    h, a, dz = run.forward.h[layer - 1], run.forward.a[layer - 1], run.gradients.dz[layer - 1]
    kept = mask != 0
    scale = 1.0 / (1.0 - rate)
    return {"layer": layer, "rate": rate, "scale": scale, "total": int(mask.size), "kept": int(kept.sum()),
            "kept_fraction": float(kept.mean()),
            "scale_error": float(np.max(np.abs(mask[kept] - scale))) if kept.any() else 0.0,
            "dropped_dz_nonzero": int(np.count_nonzero(dz[~kept])),
            "dropped_dz_max": float(np.max(np.abs(dz[~kept]))) if (~kept).any() else 0.0,
            "kept_dz_nonzero": int(np.count_nonzero(dz[kept])),
            "checks": [check(f"A{layer} = H{layer}⊙D{layer}", f"A{layer} of the run", h * mask, a,
                             run.spec.dtype, "forward")]}


# --------------------------------------------------------------------------------------- L2

def l2_data(run: StudyRun) -> dict:
    """λ/2·Σ‖W‖² in the loss, λW in each dW, against the data gradient of the same batch."""
    lam = run.spec.l2
    if not lam:
        return _absent("L2 penalty (λ = 0)", lambda spec: spec.l2 > 0,
                       "give `--l2 LAMBDA` to see λ/2·‖W‖² in the loss and λ·W in dW")
    network, dtype = run.network, run.spec.dtype
    # every tensor L2 penalizes (a dense or conv2d W, a recurrent layer's W_ih and W_hh): (layer, its
    # position among the layer's gradients, its name) → its value
    kernels = {}
    for number in run.spec.kernel_layers:
        trainable = [tensor for tensor in run.spec.numbered_layers[number - 1].tensors if tensor.trainable]
        for index, tensor in enumerate(trainable):
            if tensor.l2:
                position = run.spec.parameter_layers.index(number)
                kernels[number, index, tensor.name] = run.tensors[position][tensor.name]
    penalty = 0.5 * lam * sum(float(np.sum(w.astype(np.float64) ** 2)) for w in kernels.values())
    data_loss = float(network.loss_fn.value(run.forward.z[-1], run.forward.a[-1], run.targets))
    bare = network.backward(run.forward, run.targets, with_penalty=False)   # the data gradient alone
    rows, checks = [], [check("L = L_data + λ/2·Σ‖W‖²", "the run's loss", data_loss + penalty, run.loss,
                              dtype, "forward")]
    for (number, index, name), w in kernels.items():
        data_grad, total = bare.dp[number - 1][index], run.gradients.dp[number - 1][index]
        penalty_grad = w.dtype.type(lam) * w
        norm_data, norm_penalty = float(np.linalg.norm(data_grad)), float(np.linalg.norm(penalty_grad))
        label = f"{DISPLAY.get(name, name)}{number}"
        rows.append({"layer": number, "kernel": label, "norm_w": float(np.linalg.norm(w)),
                     "norm_penalty_grad": norm_penalty, "norm_data_grad": norm_data,
                     "ratio": _finite(norm_penalty / norm_data) if norm_data else None})
        checks.append(check(f"d{label} = data gradient + λ{label}",
                            f"{gradient_name(name, number)} of the run", data_grad + penalty_grad, total,
                            dtype))
    return {"lambda": lam, "penalty": penalty, "data_loss": data_loss, "loss": run.loss, "layers": rows,
            "checks": checks}


# ------------------------------------------------------------------------------------- BPTT

def _norm(array: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(array, np.float64)))


def bptt_data(run: StudyRun) -> dict:
    """The first recurrent layer's backpropagation through time, step by step: the engine's own
    ``bptt`` on the run's forward caches gives every step's state gradient δh_t (the total reaching
    h_t: what the output hands it plus what step t + 1 hands back; the LSTM's δc_t too); per step
    ‖h_t‖, ‖δh_t‖ and ‖δh_t‖/‖δh_{t+1}‖ — below 1 where the gradient shrinks going back in time,
    above 1 where it grows. These are the arrays the run's own gradients were summed from, so there
    is nothing here to check them against: finite differences check every δh_t
    (``test_recurrent_layers.py``) and the frameworks every step (``test_sequence_parity.py``)."""
    def recurrent(spec) -> list[int]:
        return [number for number, layer in enumerate(spec.numbered_layers, start=1)
                if layer.kind in RECURRENT]

    layers = recurrent(run.spec)
    if not layers:
        return _absent("recurrent layer", recurrent, "add an lstm, gru or simple_rnn layer")
    layer = layers[0]
    spec_layer, operation = run.spec.numbered_layers[layer - 1], run.network.layers[layer - 1]
    a_prev, dz = _input(run, layer), run.gradients.dz[layer - 1]
    cache = run.forward.caches[layer - 1]
    through = operation.bptt(dz, a_prev, cache)
    # every h_t (m, T, H) from the layer's cache (the LSTM keeps its states time-major)
    every_h = {"lstm": lambda: np.swapaxes(cache[3], 0, 1), "gru": lambda: cache[2],
               "simple_rnn": lambda: cache[1]}[spec_layer.kind]()
    steps = a_prev.shape[1]
    rows = []
    for t in range(steps):
        dh, later = _norm(through.dh[:, t]), _norm(through.dh[:, t + 1]) if t + 1 < steps else None
        rows.append({"step": t + 1, "h": _norm(every_h[:, t]), "dh": dh,
                     "dc": None if through.dc is None else _norm(through.dc[:, t]),
                     "ratio": _finite(dh / later) if later else None})
    first_dh, last_dh = rows[0]["dh"], rows[-1]["dh"]
    return {"layer": layer, "kind": spec_layer.kind, "describe": spec_layer.describe(), "steps": steps,
            "last_only": not spec_layer.return_sequences, "rows": rows,
            "first_over_last": _finite(first_dh / last_dh) if last_dh else None}


# -------------------------------------------------------------------------------------- data

TOPICS = {"batch_norm": batch_norm_data, "softmax": softmax_data, "max_pool": max_pool_data,
          "conv": conv_data, "dropout": dropout_data, "l2": l2_data, "bptt": bptt_data}


def hard_layers_data(run: StudyRun) -> dict:
    """Every topic of the module docstring for ``run``, JSON-ready."""
    return {"stack": run.spec.describe_stack(), "batch": int(len(run.x)), "dtype": run.spec.dtype,
            **{name: compute(run) for name, compute in TOPICS.items()}}


def failed_checks(data: dict) -> list[str]:
    """``topic: quantity`` of every check beyond its bound."""
    return [f"{name}: {entry['quantity']}" for name in TOPICS for entry in data[name].get("checks", [])
            if not entry["ok"]]


# ------------------------------------------------------------------------------------ blocks

def _g(value) -> str:
    return "n/a" if value is None else f"{value:.3g}".replace("-", "−")


def _e(value) -> str:
    return "n/a" if value is None else ("0" if value == 0 else f"{value:.2e}")


def checks_table(checks: list[dict], id: str, caption: str, first: str = "computed here") -> Table:
    """One row per check: what, against which array of the engine, max|Δ|, relative, bound, verdict."""
    rows = [[entry["quantity"], entry["against"], _e(entry["max_abs"]), _e(entry["relative"]),
             f"{entry['bound']:.0e}", "ok" if entry["ok"] else "MISMATCH"] for entry in checks]
    classes = [["", "", "", "", "", "ok" if entry["ok"] else "fail"] for entry in checks]
    return Table([first, "against the engine", "max|Δ|", "max|Δ| / max|engine|", "bound", "verdict"], rows,
                 caption=caption, id=id, classes=classes)


def _summary_cells(entry: dict) -> list[str]:
    s = entry["summary"]
    return [_g(s["mean"]), _g(s["std"]), _g(s["min"]), _g(s["max"])]


def batch_norm_blocks(bn: dict, id: str) -> list:
    layer = bn["layer"]
    source = "X" if layer == 1 else f"A{layer - 1}"
    title = f"BatchNorm layer {layer}, staged: x = {source} → μ → x − μ → σ² → 1/σ → x̂ → y = Z{layer}"
    lead = (f"Layer {layer} normalizes x = {source} ({'×'.join(map(str, bn['shape']))}) per channel: "
            f"{bn['channels']} channels of n = {bn['n']} values each, ε = {bn['epsilon']:g}. Written as a "
            "graph of small stages, its backward is one local rule per edge, run from y = Z"
            f"{layer} (gradient dZ{layer} of the run) back to x. x − μ feeds x̂ and σ², and x feeds "
            "μ and x − μ, so each gets the sum of two gradients (thick border).")
    rows = [[("← " if entry["backward"] else "") + entry["name"], entry["math"],
             "×".join(map(str, entry["shape"])) or "scalar", *_summary_cells(entry)]
            for entry in bn["stages"]]
    stages = Table(["stage", "math (Σ and mean per channel, over its n values)", "shape", "mean", "std",
                    "min", "max"], rows, id=f"{id}-bn-stages",
                   caption=f"Layer {layer}: every stage's value in this run, forward then backward (←)")
    compact = bn["compact"]
    return [lead, Svg(svg.draw(bn["graph"], f"{id}-bn", title), title), stages,
            f"The engine does not stage it: `{compact['where']}` computes dx in one expression, "
            f"`{compact['line']}` — {compact['math']}. The staged dx must equal it:",
            checks_table(bn["checks"], f"{id}-bn-checks",
                         f"Layer {layer}: the staged values against the run")]


def softmax_blocks(sm: dict, id: str) -> list:
    layer, m = sm["layer"], sm["m"]
    lead = (f"The output layer {layer} is softmax over {sm['classes']} classes, the loss cross-entropy on "
            f"m = {m} samples. The engine fuses the two: {sm['fused_math']}. The separate chain takes the "
            f"loss's own gradient dA = −Y/(m·A) and then the softmax Jacobian, {sm['jacobian_math']}. On "
            "this batch both give the same dZ:")
    rows, classes = [], []
    for row in sm["scales"]:
        broken = row["separate_nonfinite"] > 0
        rows.append([f"×{row['scale']:g}", _g(row["max_logit"]), _g(row["min_target_probability"]),
                     "yes" if row["fused_finite"] else "NO",
                     f"{row['separate_nonfinite']} of {row['size']}", _e(row["separate_max_abs"]),
                     _e(row["separate_relative"]), _g(row["loss_fused"]),
                     "inf" if row["loss_separate"] is None else _g(row["loss_separate"])])
        # "breaks" marks a measured breakdown of the long way round, not a failed check
        classes.append(["", "", "", "neutral" if row["fused_finite"] else "breaks",
                        "breaks" if broken else "neutral", "", "", "",
                        "breaks" if row["loss_separate"] is None else ""])
    scales = Table(["logits", "max|Z|", "min A at the target", "fused finite", "separate: inf/NaN",
                    "separate: max|Δ| (finite entries)", "relative", "loss (logsumexp)", "loss −Σ Y·log A/m"],
                   rows, caption=f"Z{layer} of this batch scaled: the fused and the separate dZ",
                   id=f"{id}-softmax-scales", classes=classes)
    return [lead, checks_table(sm["checks"], f"{id}-softmax-checks",
                               "The fused and the separate dZ on this batch"),
            "Why the frameworks fuse it (torch's cross-entropy takes logits, Keras's has from_logits, "
            "optax's softmax_cross_entropy takes logits): scale the same logits and the target's "
            "probability A underflows to 0; the separate chain divides by it (−Y/(m·A) = −inf, then "
            "inf·0 = NaN in the Jacobian), and the loss log A is −inf. The fused (A − Y)/m never divides, "
            "and the loss through logsumexp stays finite:", scales]


def _grid(values: list[list[float]], mark: tuple[int, int] | None = None) -> str:
    lines = []
    for i, row in enumerate(values):
        cells = [f"{v:>12.6g}{'*' if mark == (i, j) else ' '}".replace("-", "−") for j, v in enumerate(row)]
        lines.append(" ".join(cells))
    return "\n".join(lines)


def max_pool_blocks(mp: dict, id: str) -> list:
    layer, window = mp["layer"], mp["window"]
    n, c, y, x = window["where"]
    chosen = tuple(window["chosen"])
    tie = (f"it holds its maximum {window['maxima']} times, a tie: the engine (like torch and JAX) gives "
           f"dZ to the first maximum in row-major order, offset {chosen}, and nothing to the others"
           if window["maxima"] > 1 else
           f"its maximum is at offset {chosen}, which gets dZ; the other inputs get nothing")
    lead = (f"Layer {layer} max-pools {mp['pool'][0]}×{mp['pool'][1]} windows at stride {mp['stride']}. "
            f"The window of sample {n}, channel {c}, output ({y}, {x}) has dZ{layer} = {_g(window['dz'])}; "
            f"{tie}. On a tie the rule is the engine's (`scratch.layers.pooling`: first maximum, row-major); "
            "another backend that breaks a rounding-level tie differently is found and checked around by "
            "`judge.pool_ties`.")
    blocks = [lead, Pre(f"the window's inputs (* gets the gradient):\n{_grid(window['values'], chosen)}")]
    if window["engine_dx"] is not None:
        blocks.append(Pre(f"the engine's dA{layer - 1} on the window:\n{_grid(window['engine_dx'])}"))
    blocks.append(f"This batch has {mp['windows']} windows in layer {layer}; {mp['ties']} hold a tied "
                  f"maximum, {mp['zero_ties']} of them all zeros (e.g. ReLU's zeros over a blank region); "
                  f"{mp['ties_with_gradient']} tied windows carry a non-zero dZ{layer}, "
                  f"{mp['nonzero_ties_with_gradient']} of them tied at a non-zero value. Routing every "
                  "window here with argmax (which takes the first maximum) gives the engine's dX:")
    blocks.append(checks_table(mp["checks"], f"{id}-pool-checks", f"Layer {layer}: max-pool routing"))
    return blocks


def conv_blocks(cv: dict, id: str) -> list:
    layer = cv["layer"]
    (k_rows, columns), (o, k) = cv["columns_shape"], cv["w_col_shape"]
    x_shape, w_shape = "×".join(map(str, cv["x_shape"])), "×".join(map(str, cv["w_shape"]))
    lead = (f"Layer {layer} convolves x ({x_shape}) with W ({w_shape}), stride {cv['stride']}, dilation "
            f"{cv['dilation']}, padding (top, bottom, left, right) {tuple(cv['padding'])}, to "
            f"{cv['out'][0]}×{cv['out'][1]} maps. im2col copies every patch into one column: X_col is "
            f"{k_rows}×{columns} (C·k_h·k_w rows, m·H_out·W_out columns), W_col is W as {o}×{k}, dZ_col "
            f"is dZ{layer} as {cv['dz_col_shape'][0]}×{cv['dz_col_shape'][1]}. Then the convolution is one "
            "GEMM each way:")
    gemms = Pre(f"forward   Z_col  = W_col · X_col + b      ({o}×{k}) · ({k_rows}×{columns})\n"
                f"weights   dW_col = dZ_col · X_colᵀ         ({o}×{columns}) · ({columns}×{k_rows})"
                + (f"   + λW, λ = {cv['l2']:g}" if cv["l2"] else "") + "\n"
                f"input     dX_col = W_colᵀ · dZ_col         ({k}×{o}) · ({o}×{columns}), then col2im "
                "adds each column back where its patch came from")
    return [lead, gemms, checks_table(cv["checks"], f"{id}-conv-checks",
                                      f"Layer {layer}: im2col and the GEMMs computed here against the run")]


def dropout_blocks(dr: dict, id: str) -> list:
    layer = dr["layer"]
    kept, expected, dropped = 100 * dr["kept_fraction"], 100 * (1 - dr["rate"]), dr["total"] - dr["kept"]
    text = (f"Layer {layer} drops with p = {dr['rate']:g}: in this batch its mask D{layer} keeps "
            f"{dr['kept']} of {dr['total']} entries ({kept:.1f} %, expected {expected:.0f} %) "
            f"and scales them by 1/(1 − p) = {dr['scale']:.6g} (largest deviation of a kept entry from it: "
            f"{_e(dr['scale_error'])}), so A{layer} = H{layer}⊙D{layer} keeps its expectation. The "
            f"backward multiplies by the same mask: dH{layer} = dA{layer}⊙D{layer}, so dZ{layer} is 0 at "
            f"every dropped entry — here {dr['dropped_dz_nonzero']} non-zero of {dropped} dropped "
            f"(max|dZ{layer}| there {_e(dr['dropped_dz_max'])}), against {dr['kept_dz_nonzero']} non-zero of "
            f"{dr['kept']} kept.")
    return [text, checks_table(dr["checks"], f"{id}-dropout-checks", f"Layer {layer}: the mask applied")]


def l2_blocks(l2: dict, id: str) -> list:
    text = (f"With λ = {l2['lambda']:g} the loss is L = L_data + (λ/2)·Σ‖W_l‖²: here {_g(l2['data_loss'])} "
            f"+ {_g(l2['penalty'])} = {_g(l2['loss'])}. Each kernel W_l is used twice — in its layer and in "
            "the penalty — so dW_l is the sum of two gradients, the data gradient (the engine's backward "
            "without the penalty) and λ·W_l. Their sizes on this batch (Frobenius norms):")
    rows = [[row["kernel"], _g(row["norm_w"]), _g(row["norm_data_grad"]), _g(row["norm_penalty_grad"]),
             _g(row["ratio"])] for row in l2["layers"]]
    table = Table(["kernel", "‖W‖", "‖data gradient‖", "‖λW‖", "‖λW‖ / ‖data gradient‖"], rows,
                  caption="L2 against the data gradient, per kernel", id=f"{id}-l2-sizes")
    return [text, table, checks_table(l2["checks"], f"{id}-l2-checks", "The penalty's terms against the run")]


def bptt_blocks(bp: dict, id: str) -> list:
    layer, steps = bp["layer"], bp["steps"]
    feed = (f"only h_{steps}, the last state, reaches the layers above, so δh_{steps} is the output's "
            "gradient and every earlier δh_t is what the later steps hand back" if bp["last_only"] else
            "every h_t reaches the layers above, so each δh_t is the output's gradient at t plus what "
            "step t + 1 hands back")
    text = (f"Layer {layer}, {bp['describe']}, unrolled over its {steps} time steps. The forward pass runs "
            f"h_1 … h_{steps}; backpropagation through time runs the steps backwards, δh_{steps} … δh_1: "
            f"{feed}. "
            "Each parameter's gradient is the sum of every step's share (dW_hh = Σ_t δ_tᵀ·h_(t−1)). How the "
            "state gradient's size changes going back is the vanishing (ratio < 1) or exploding (> 1) "
            "gradient "
            f"in numbers: here ‖δh_1‖/‖δh_{steps}‖ = {_g(bp['first_over_last'])}.")
    lstm = any(row["dc"] is not None for row in bp["rows"])
    header = ["t", "‖h_t‖", "‖δh_t‖", *(["‖δc_t‖"] if lstm else []), "‖δh_t‖ / ‖δh_(t+1)‖"]
    rows = [[str(row["step"]), _g(row["h"]), _g(row["dh"]), *([_g(row["dc"])] if lstm else []),
             _g(row["ratio"])] for row in bp["rows"]]
    table = Table(header, rows, caption=f"Layer {layer}: the state and its gradient per time step (norms "
                                        "over the batch)", id=f"{id}-bptt-steps")
    return [text, table]


TITLES = {"batch_norm": ("BatchNorm's backward, stage by stage", batch_norm_blocks),
          "softmax": ("Softmax and cross-entropy: fused or separate", softmax_blocks),
          "max_pool": ("Max-pool: where the gradient goes", max_pool_blocks),
          "conv": ("A convolution as im2col and one GEMM each way", conv_blocks),
          "dropout": ("The dropout mask", dropout_blocks),
          "l2": ("L2: λ/2·‖W‖² in the loss, λW in dW", l2_blocks),
          "bptt": ("Backpropagation through time, step by step", bptt_blocks)}


def hard_layers_blocks(data: dict, id: str = "hard") -> list:
    """The report's blocks for :func:`hard_layers_data`: a lead paragraph, then per topic one
    open ``Details`` (or its one line where the model lacks the layer). ``id`` prefixes the tables'
    and drawings' ids: give each model on one page its own."""
    bad = failed_checks(data)
    lead = (f"The layers whose backward a compact formula hides, taken apart with the numbers of this step "
            f"({data['stack']}, {data['batch']} samples, {data['dtype']}). Each check compares the long way, "
            "computed here from the run's arrays, with the engine's own array: max|Δ| and max|Δ|/max|engine| "
            "against the tolerance table's bound — "
            + (f"{len(bad)} beyond it: {', '.join(bad)}." if bad else "every one within it."))
    blocks = [lead]
    for name, (title, render) in TITLES.items():
        topic = data[name]
        if "absent" in topic:
            blocks.append(f"{title}: {topic['absent']}")
        else:
            blocks.append(Details(title, render(topic, id), open=True))
    return blocks
