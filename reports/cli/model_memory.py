"""Refuse a model too large for this machine before allocating it.

A dense layer of (n_{l-1}, n_l) holds (n_{l-1} + 1)·n_l parameters (a conv2d layer
(C·k_h·k_w + 1)·O, a normalization layer 2·C). Training keeps, per backend copy,
the parameters, their gradients and the optimizer's state (none for SGD, one buffer for momentum
and RMSprop, two for Adam), so it needs at least

    bytes = copies · Σ_l (values of W_l and b_l) · itemsize · (2 + state buffers)

(activations come on top). If that exceeds the memory the kernel reports available
(``MemAvailable`` in /proc/meminfo; the physical memory elsewhere), the run is refused with one
error naming the largest layer, instead of a MemoryError after minutes of allocation.
"""

from __future__ import annotations

import math
import os

from reports.cli.exit_codes import UsageError

STATE_BUFFERS = {"sgd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}
ITEMSIZE = {"float32": 4, "float64": 8}


def required_bytes(spec, copies: int = 1) -> int:
    """The lower bound in the module docstring."""
    parameters = sum(_count(shapes) for shapes in spec.parameter_shapes)
    return copies * parameters * ITEMSIZE[spec.dtype] * (2 + STATE_BUFFERS[spec.optimizer.name])


def available_bytes() -> int | None:
    """MemAvailable (Linux), else the physical memory, else None (unknown: no check)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_model_fits(spec, copies: int = 1, available: int | None = None) -> None:
    """Raise :class:`UsageError` (exit 2) if training ``copies`` copies of ``spec`` cannot fit."""
    available = available_bytes() if available is None else available
    needed = required_bytes(spec, copies)
    if available is None or needed <= available:
        return
    index = max(range(len(spec.parameter_shapes)), key=lambda i: _count(spec.parameter_shapes[i]))
    layer, per_layer = spec.parameter_layers[index], _count(spec.parameter_shapes[index])
    if spec.is_mlp:
        sizes = spec.layer_sizes
        where = f"spec field 'layer_sizes': layer {layer} ({sizes[layer - 1]} → {sizes[layer]})"
    else:
        where = f"spec field 'layers': layer {layer} ({spec.numbered_layers[layer - 1].kind})"
    raise UsageError(
        f"{where} alone has "
        f"{per_layer:,} parameters; training needs at least {_size(needed)} (parameters, gradients and "
        f"{spec.optimizer.name} state, {spec.dtype}{f', {copies} backends' if copies > 1 else ''}) but only "
        f"{_size(available)} of memory is available")


def _count(shapes) -> int:
    """The number of values in a layer's (W, b)."""
    return sum(math.prod(shape) for shape in shapes)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            break
        n /= 1024
    return f"{n:.1f} {unit}"
