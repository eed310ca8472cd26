"""Refuse a model too large for this machine before allocating it.

A dense layer of (n_{l-1}, n_l) holds (n_{l-1} + 1)·n_l parameters (a conv2d layer
(C·k_h·k_w + 1)·O, a normalization layer 2·C). Training keeps, per backend copy,
the parameters, their gradients and the optimizer's state (none for SGD, one buffer for momentum
and RMSprop, two for Adam), so it needs at least

    bytes = copies · Σ_l (values of W_l and b_l) · itemsize · (2 + state buffers)

(activations come on top). If that exceeds the memory the kernel reports available
(``MemAvailable`` in /proc/meminfo; the physical memory elsewhere: ``scratch.memory``, which the
engine's own check of building a network shares), the run is refused with one
error naming the largest layer, instead of a MemoryError after minutes of allocation.
"""

from __future__ import annotations

from reports.cli.exit_codes import UsageError
from scratch.memory import ITEMSIZE, available_bytes, largest_layer, layer_values, size_text

STATE_BUFFERS = {"sgd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}


def required_bytes(spec, copies: int = 1) -> int:
    """The lower bound in the module docstring."""
    parameters = sum(layer_values(shapes) for shapes in spec.parameter_shapes)
    return copies * parameters * ITEMSIZE[spec.dtype] * (2 + STATE_BUFFERS[spec.optimizer.name])


def check_model_fits(spec, copies: int = 1, available: int | None = None) -> None:
    """Raise :class:`UsageError` (exit 2) if training ``copies`` copies of ``spec`` cannot fit."""
    available = available_bytes() if available is None else available
    needed = required_bytes(spec, copies)
    if available is None or needed <= available:
        return
    where, per_layer = largest_layer(spec)
    raise UsageError(
        f"{where} alone has "
        f"{per_layer:,} parameters; training needs at least {size_text(needed)} (parameters, gradients and "
        f"{spec.optimizer.name} state, {spec.dtype}{f', {copies} backends' if copies > 1 else ''}) but only "
        f"{size_text(available)} of memory is available")
