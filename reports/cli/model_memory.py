"""Refuse a run too large for this machine before allocating it: the estimated peak of one
training step and of evaluation, per backend copy, from the spec's layer shapes.

Notation: per sample, layer l (numbered, dropout excluded) maps n_{l−1} values to n_l (the
product of ``spec.layer_shapes``); a conv2d layer's im2col patches P hold p_l = C·k_h·k_w ·
H_out·W_out values per sample (P is (C·k_h·k_w, H_out·W_out·m), ``scratch.layers.conv``); N is the
number of parameters (a dense layer (n_{l−1} + 1)·n_l, a conv2d (C·k_h·k_w + 1)·O, a normalization
2·C); s the optimizer's state buffers (sgd 0, momentum and RMSprop 1, Adam 2); b the itemsize
(4 or 8 bytes). The engine (``scratch.model``) runs a step in blocks of r = min(m, BLOCK_ROWS) rows
(the whole batch m when a BatchNorm couples the rows), one block alive at a time. Per sample, in
values:

    forward kept       F_l = Z_l + H_l + A_l + cache_l
                             Z_l = n_l;  H_l = n_l unless g_l is the identity (then H_l is Z_l);
                             A_l = n_l where dropout follows layer l (training only);
                             cache_l = p_l (conv2d), n_l (x̂ of a training BatchNorm, of LayerNorm),
                             0 otherwise (a max pool's cache is its own Z)
    backward kept      G_l = dZ_l + dA_l = n_l + n_l·[l < L]     (every dZ_l and dA_l is returned)
    backward transient T_l = conv2d: n_l (dZ₂) + [l > 1]·(p_l (dP) + n_{l−1} (dX));
                             any other layer: n_l + n_{l−1} (a temporary and dA_{l−1})

    training step   = N·b·(2 + s) + N·b·[m > r]                  parameters, their gradients
                                                                 (a second set sums the blocks),
                                                                 optimizer state
                    + m·(n_0 + n_L + Σ_{dropout l} n_l)·b          the batch: X, Y, masks D_l
                    + r·(Σ_l F_l + Σ_l G_l + max_l T_l)·b          one block, forward and backward
    evaluation      = N·b·(1 + s)                                  parameters, optimizer state
                    + e·Σ_l F_l(inference)·b                       one block of e = min(rows,
                                                                 BLOCK_ROWS) rows, incl. patches
                    + rows·2·n_L·b                                 the kept outputs Z_L, A_L
    needed          = copies · max(training step, evaluation)

The im2col share, r·(Σ p_l + max dP)·b in a step, is reported as its own part: it dominates a
CNN (mnist-cnn at m = 128: about 60 % of the step). The estimate counts NumPy's arrays only (not
the interpreter, the libraries, BLAS workspaces, or a framework's own allocator); checked against
the peak ``tracemalloc`` measures for one engine step of lenet5 and mnist-cnn and their evaluation
(``test_model_memory.py``: within 0.8–1.6× of it, the test's documented band). If ``needed``
exceeds the memory the kernel reports available (``MemAvailable`` in /proc/meminfo; the physical
memory elsewhere: ``scratch.memory``, which the engine's own check of building a network
shares), the run is refused with one error giving both figures and the part that
dominates, instead of a MemoryError (or the kernel's OOM killer) after minutes of work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reports.cli.exit_codes import UsageError
from scratch.memory import ITEMSIZE, available_bytes, size_text
from scratch.memory import layer_values as _count
from scratch.model import BLOCK_ROWS

STATE_BUFFERS = {"sgd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}


@dataclass(frozen=True)
class LayerValues:
    """Values per sample of numbered layer l (the module docstring's F_l, G_l, T_l, p_l)."""

    forward: int          # F_l in training
    inference: int        # F_l in inference (no dropout output, no BatchNorm cache)
    backward: int         # G_l
    transient: int        # T_l
    patches: int          # p_l (0 but for conv2d)
    transient_patches: int  # the dP inside T_l


def layer_values(spec, number: int) -> LayerValues:
    """F_l, G_l, T_l and p_l of layer ``number`` (1-based) per sample, from the spec's shapes."""
    layer = spec.numbered_layers[number - 1]
    n_in, n_out = math.prod(spec.layer_shapes[number - 1]), math.prod(spec.layer_shapes[number])
    hidden = number < spec.n_layers
    h = 0 if spec.activations[number - 1] == "identity" else n_out
    dropped = n_out if hidden and spec.dropout_rates[number - 1] else 0
    patches = 0
    if layer.kind == "conv2d":
        k_h, k_w = layer.kernel_size
        patches = spec.layer_shapes[number - 1][0] * k_h * k_w * math.prod(spec.layer_shapes[number][1:])
    normalized = n_out if layer.kind in ("batch_norm", "layer_norm") else 0
    forward = n_out + h + dropped + patches + normalized
    inference = n_out + h + patches + (normalized if layer.kind == "layer_norm" else 0)
    d_patches = patches if number > 1 else 0
    transient = n_out + d_patches + (n_in if number > 1 else 0) if layer.kind == "conv2d" else n_out + n_in
    return LayerValues(forward, inference, n_out + n_out * hidden, transient, patches, d_patches)


@dataclass(frozen=True)
class MemoryEstimate:
    """The module docstring's figures in bytes, for one backend copy (``needed``: all copies).
    ``step_parts`` and ``evaluation_parts`` name what each peak is made of."""

    step_parts: dict[str, int]
    evaluation_parts: dict[str, int]
    copies: int
    batch: int
    block_rows: int
    evaluation_rows: int
    batch_known: bool     # False: a full batch of rows not yet known, counted as one block

    @property
    def step(self) -> int:
        return sum(self.step_parts.values())

    @property
    def evaluation(self) -> int:
        return sum(self.evaluation_parts.values())

    @property
    def peak(self) -> int:
        """The larger of the two peaks, one backend copy."""
        return max(self.step, self.evaluation)

    @property
    def needed(self) -> int:
        return self.copies * self.peak

    @property
    def dominant(self) -> tuple[str, str, int]:
        """(phase, part, bytes) of the largest part of the larger peak."""
        phase, parts = (("training step", self.step_parts) if self.step >= self.evaluation
                        else ("evaluation", self.evaluation_parts))
        part = max(parts, key=parts.get)
        return phase, part, parts[part]


def estimate(spec, copies: int = 1, batch: int | None = None, rows: int | None = None) -> MemoryEstimate:
    """The module docstring's estimate. ``batch`` is m, the rows of one step (default: the spec's
    batch size, else ``rows``, else one block of BLOCK_ROWS: a lower bound for a full batch of
    unknown size); ``rows`` the rows evaluated (their outputs are kept; default m)."""
    b = ITEMSIZE[spec.dtype]
    known = bool(batch or spec.batch_size or rows)
    m = batch or spec.batch_size or rows or BLOCK_ROWS
    rows = rows or m
    r = m if spec.statistics_layers else min(m, BLOCK_ROWS)
    e = min(rows, BLOCK_ROWS)
    values = [layer_values(spec, number) for number in range(1, spec.n_layers + 1)]
    n_parameters = sum(_count(shapes) for shapes in spec.parameter_shapes)
    state = STATE_BUFFERS[spec.optimizer.name]
    dropped = sum(math.prod(shape) for rate, shape in zip(spec.dropout_rates, spec.layer_shapes[1:-1],
                                                          strict=True) if rate)
    n_0, n_L = math.prod(spec.layer_shapes[0]), math.prod(spec.layer_shapes[-1])
    largest = max(values, key=lambda v: v.transient)
    step_patches = sum(v.patches for v in values) + largest.transient_patches
    step_values = sum(v.forward + v.backward for v in values) + largest.transient
    step_parts = {
        f"parameters, gradients and {spec.optimizer.name} state": n_parameters * b * (2 + state + (m > r)),
        "the batch (inputs, targets, dropout masks)": m * (n_0 + n_L + dropped) * b,
        "im2col patches": r * step_patches * b,
        "activations, caches and their gradients": r * (step_values - step_patches) * b,
    }
    eval_patches = sum(v.patches for v in values)
    evaluation_parts = {
        f"parameters and {spec.optimizer.name} state": n_parameters * b * (1 + state),
        "im2col patches": e * eval_patches * b,
        "activations and caches": e * (sum(v.inference for v in values) - eval_patches) * b,
        "the kept outputs": rows * 2 * n_L * b,
    }
    return MemoryEstimate(step_parts, evaluation_parts, copies, m, r, e, known)


def required_bytes(spec, copies: int = 1, batch: int | None = None, rows: int | None = None) -> int:
    """``needed`` of :func:`estimate`."""
    return estimate(spec, copies, batch, rows).needed


def check_model_fits(spec, copies: int = 1, available: int | None = None, batch: int | None = None,
                     rows: int | None = None) -> MemoryEstimate:
    """Raise :class:`UsageError` (exit 2) if ``copies`` backend copies of ``spec`` cannot train a
    step of ``batch`` rows or evaluate ``rows`` in the memory available; else the estimate."""
    available = available_bytes() if available is None else available
    figures = estimate(spec, copies, batch, rows)
    if available is None or figures.needed <= available:
        return figures
    phase, part, size = figures.dominant
    parts = figures.step_parts if phase == "training step" else figures.evaluation_parts
    listed = ", ".join(f"{name} {size_text(value)}" for name, value in parts.items() if value)
    shape = (f"blocks of {figures.evaluation_rows:,} rows" if phase == "evaluation"
             else f"{figures.batch:,} rows in blocks of {figures.block_rows:,}" if figures.batch_known
             else f"a full batch, counted as one block of {figures.block_rows:,} rows")
    other = (f"evaluation {size_text(figures.evaluation)}" if phase == "training step"
             else f"a training step {size_text(figures.step)}")
    total = f"; {size_text(figures.needed)} for {copies} backends" if copies > 1 else ""
    raise UsageError(
        f"{_where(spec, part, figures)}; a {phase} ({shape}) needs about {size_text(figures.peak)} "
        f"per backend copy ({listed}; {other}){total}, but only {size_text(available)} of memory is "
        f"available: {part} dominate{_remedy(phase, part, figures)}")


def _where(spec, part: str, figures: MemoryEstimate) -> str:
    """The spec field and layer behind the dominant part."""
    field = "layer_sizes" if spec.is_mlp else "layers"
    if part.startswith("parameters"):
        index = max(range(len(spec.parameter_shapes)), key=lambda i: _count(spec.parameter_shapes[i]))
        return (f"spec field '{field}': {_layer(spec, spec.parameter_layers[index])} alone has "
                f"{_count(spec.parameter_shapes[index]):,} parameters")
    if part.startswith("the batch"):
        return f"a batch of {figures.batch:,} rows"
    if part.startswith("the kept"):
        return "the rows evaluated"
    values = [layer_values(spec, number) for number in range(1, spec.n_layers + 1)]
    key = (lambda v: v.patches) if part == "im2col patches" else (lambda v: v.forward - v.patches)
    layer = max(range(1, spec.n_layers + 1), key=lambda number: key(values[number - 1]))
    what = "im2col patches" if part == "im2col patches" else "activations and caches"
    return (f"spec field '{field}': {_layer(spec, layer)} keeps {key(values[layer - 1]):,} values of {what} "
            f"per sample")


def _layer(spec, number: int) -> str:
    """"layer 1 (784 → 64)" in an MLP, "layer 1 (conv2d)" otherwise."""
    if spec.is_mlp:
        return f"layer {number} ({spec.layer_sizes[number - 1]} → {spec.layer_sizes[number]})"
    return f"layer {number} ({spec.numbered_layers[number - 1].kind})"


def _remedy(phase: str, part: str, figures: MemoryEstimate) -> str:
    """How to lower the dominant part, where a setting does: the batch, or a block that is the
    whole batch (m ≤ BLOCK_ROWS, or a BatchNorm) of a batch size that is known."""
    if not figures.batch_known or part.startswith("parameters") or part.startswith("the kept"):
        return ""
    if part.startswith("the batch") or (phase == "training step" and figures.block_rows == figures.batch):
        return "; a smaller batch_size lowers them"
    return ""
