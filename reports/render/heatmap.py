"""The parity heat map: per dtype and backend pair, a layer × quantity grid of each comparison's
error in units of the dtype's machine epsilon ε (``np.finfo(dtype).eps``: 2^-52 in float64,
2^-23 in float32),

    e_ε = max|a − d| / (max(max|d|, floor) · ε)  = rel_error / ε,

the normwise relative error that the verdict holds to its bound, counted in ulps of the largest
reference element (an ulp of x lies in [ε·|x|/2, ε·|x|]). This one is shown rather than the
largest elementwise error in ulps of each element (``max_ulps`` in the JSON rows), because
an element that cancels to nearly zero has a tiny ulp, so its elementwise count can run to
millions while the quantity is exact to rounding.

Cells are binned by log10(e_ε) into CSS classes ``heat-0`` (exactly 0), ``heat-1`` (≤ 1),
``heat-2`` (≤ 10), … ``heat-6`` (> 10^4); ``heat-na`` is a value that was not finite; a
comparison over its bound also gets ``fail``.
"""

from __future__ import annotations

import math
import re

import numpy as np

from scratch.layer_specs import GRADIENTS

# quantity base names in the order of a layer's forward then backward pass (each declared tensor's
# gradient: dW, db, dgamma, dbeta, dalpha); others follow
ORDER = ("Z", "A", "loss", "dA", "dZ", *GRADIENTS)
BINS = (1.0, 10.0, 100.0, 1e3, 1e4)         # upper edges of heat-1 … heat-5
LEGEND = ["0", "≤ 1", "≤ 10", "≤ 100", "≤ 10³", "≤ 10⁴", "> 10⁴", "not finite"]
LEGEND_CLASSES = ["heat-0", "heat-1", "heat-2", "heat-3", "heat-4", "heat-5", "heat-6", "heat-na"]


def eps_units(rel_error, dtype: str) -> float | None:
    """rel_error / ε of ``dtype`` (None stays None: the value was not finite)."""
    return None if rel_error is None else rel_error / float(np.finfo(dtype).eps)


def heat_class(value) -> str:
    if value is None:
        return "heat-na"
    if value == 0:
        return "heat-0"
    return f"heat-{1 + sum(value > edge for edge in BINS)}"


def fmt_eps(value) -> str:
    if value is None:
        return "n/a"
    return "0" if value == 0 else f"{value:.3g}"


def base_name(quantity: str) -> str:
    """``dW2`` → ``dW``; ``loss`` → ``loss``."""
    return re.sub(r"\d+$", "", quantity)


def grid(rows: list[dict]) -> tuple[list[str], list[str], dict]:
    """For the rows of one dtype and pair: the row labels (layers ascending, then ``—`` for the
    quantities of no layer, the loss), the column labels (quantity base names) and
    ``{(row label, column): parity row}``."""
    bases = list(dict.fromkeys(base_name(row["quantity"]) for row in rows))
    columns = [b for b in ORDER if b in bases] + [b for b in bases if b not in ORDER]
    layers = sorted({row["layer"] for row in rows if row["layer"] is not None})
    labels = [str(layer) for layer in layers] + (["—"] if any(row["layer"] is None for row in rows) else [])
    cells = {}
    for row in rows:
        key = ("—" if row["layer"] is None else str(row["layer"]), base_name(row["quantity"]))
        if key in cells:
            raise ValueError(f"parity rows: two rows for layer {key[0]}, quantity {key[1]} "
                             f"({cells[key]['quantity']}, {row['quantity']}) in {row['dtype']} {row['pair']}")
        cells[key] = row
    return labels, columns, cells


def bounds_text(rows: list[dict], dtype: str) -> str:
    """``forward 450 ε, gradient 450 ε``: each kind's bound in ε units."""
    bounds = dict.fromkeys(row["kind"] for row in rows)
    for row in rows:
        bounds[row["kind"]] = row["tolerance"]
    return ", ".join(f"{kind} {math.floor(eps_units(bound, dtype)):.0f} ε" for kind, bound in bounds.items())
