"""Refuse to build a network too large for this machine, before allocating it.

A layer's parameters W_l, b_l hold (n_{l−1} + 1)·n_l values (dense), (C·k_h·k_w + 1)·O (conv2d),
2·C (a normalization layer). Building a :class:`scratch.model.Network` from its initializer
holds, at its peak,

    bytes = 2 · Σ_l (values of W_l and b_l) · itemsize  +  2 · 8 · (values of the largest layer)

— the initializer's parameters and the network's own copies of them, plus the float64 draw of
the largest layer and its scaled product (``scratch.initializers`` draws in float64 and casts).
If that exceeds the memory the kernel reports available (``MemAvailable`` in /proc/meminfo; the
physical memory elsewhere), the network is refused with one :class:`SpecError` naming the largest
layer, instead of a ``MemoryError`` from NumPy. The CLI's guard (``reports.cli.model_memory``)
adds training's gradients and optimizer state on top and reads the same available memory.
"""

from __future__ import annotations

import math
import os

import numpy as np

from scratch.errors import SpecError

ITEMSIZE = {"float32": 4, "float64": 8}
DRAW_ITEMSIZE = 8
"""The initializers draw in float64 (``scratch.initializers``)."""


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


def layer_values(shapes) -> int:
    """The number of values in one layer's (W, b)."""
    return sum(math.prod(shape) for shape in shapes)


def largest_layer(spec) -> tuple[str, int]:
    """(where, values): the spec field and layer with the most parameters, e.g.
    ``spec field 'layer_sizes': layer 1 (784 → 100000000)``, and its number of values."""
    index = max(range(len(spec.parameter_shapes)), key=lambda i: layer_values(spec.parameter_shapes[i]))
    layer, values = spec.parameter_layers[index], layer_values(spec.parameter_shapes[index])
    if spec.is_mlp:
        sizes = spec.layer_sizes
        return f"spec field 'layer_sizes': layer {layer} ({sizes[layer - 1]} → {sizes[layer]})", values
    return f"spec field 'layers': layer {layer} ({spec.numbered_layers[layer - 1].kind})", values


def network_bytes(spec, dtype) -> int:
    """The peak of building ``spec``'s network from its initializer in ``dtype`` (any NumPy
    float dtype: the arbiter's ``longdouble`` too) (the module docstring)."""
    values = [layer_values(shapes) for shapes in spec.parameter_shapes]
    return 2 * sum(values) * np.dtype(dtype).itemsize + 2 * DRAW_ITEMSIZE * max(values, default=0)


def check_network_fits(spec, dtype, available: int | None = None) -> None:
    """Raise :class:`SpecError` if building ``spec``'s network in ``dtype`` cannot fit."""
    available = available_bytes() if available is None else available
    needed = network_bytes(spec, dtype)
    dtype = np.dtype(dtype).name
    if available is None or needed <= available:
        return
    where, values = largest_layer(spec)
    raise SpecError(f"{where} alone has {values:,} parameters; building the network needs at least "
                    f"{size_text(needed)} (its {dtype} parameters, twice, and the initializer's float64 "
                    f"draw) but only {size_text(available)} of memory is available")


def size_text(n: float) -> str:
    """Bytes in the largest binary unit below 1024 of it, e.g. ``584.1 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            break
        n /= 1024
    return f"{n:.1f} {unit}"
