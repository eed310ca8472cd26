"""Refuse a model too large for this machine before allocating it.

A layer of (n_{l-1}, n_l) holds (n_{l-1} + 1)·n_l parameters. Training keeps, per backend copy,
the parameters, their gradients and the optimizer's state (none for SGD, one buffer for momentum
and RMSprop, two for Adam), so it needs at least

    bytes = copies · Σ_l (n_{l-1} + 1)·n_l · itemsize · (2 + state buffers)

(activations come on top). If that exceeds the memory the kernel reports available
(``MemAvailable`` in /proc/meminfo; the physical memory elsewhere), the run is refused with one
error naming the largest layer, instead of a MemoryError after minutes of allocation.
"""

from __future__ import annotations

import os

from reports.cli.exit_codes import UsageError

STATE_BUFFERS = {"sgd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}
ITEMSIZE = {"float32": 4, "float64": 8}


def required_bytes(spec, copies: int = 1) -> int:
    """The lower bound in the module docstring."""
    sizes = spec.layer_sizes
    parameters = sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True))
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
    sizes = spec.layer_sizes
    layer = max(range(1, len(sizes)), key=lambda l: (sizes[l - 1] + 1) * sizes[l])
    per_layer = (sizes[layer - 1] + 1) * sizes[layer]
    raise UsageError(
        f"spec field 'layer_sizes': layer {layer} ({sizes[layer - 1]} → {sizes[layer]}) alone has "
        f"{per_layer:,} parameters; training needs at least {_size(needed)} (parameters, gradients and "
        f"{spec.optimizer.name} state, {spec.dtype}{f', {copies} backends' if copies > 1 else ''}) but only "
        f"{_size(available)} of memory is available")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            break
        n /= 1024
    return f"{n:.1f} {unit}"
