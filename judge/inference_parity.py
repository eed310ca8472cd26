"""Inference mode compared: the outputs (Z_L, A_L) of two backends on one batch with no dropout and
BatchNorm normalizing by the running statistics each backend holds (``check`` loads the weight
file's into every backend), through each one's own inference path (``Backend.inference_outputs``:
torch's ``eval()``, Keras's ``training=False``, JAX's running-statistics branch, the engine's
``Network.inference_outputs``).

Training-mode traces never read the running statistics, so without these rows a backend that
loads them wrongly, or ignores them, passes every other comparison of a trained BatchNorm file.
The rows are judged with the forward bound of :mod:`judge.tolerances`: in inference a
BatchNorm is an affine map per channel, y = γ·(x − μ)/√(v + ε) + β, with no reduction over the
batch, so nothing in it rounds more than a forward layer does.
"""

from __future__ import annotations

import numpy as np

from judge.parity import Comparison, _compare_one, _notify
from judge.tolerances import tolerance


def inference_names(n_layers: int) -> tuple[str, str]:
    """The quantities' names, ``inference ZL`` and ``inference AL`` (L the output layer)."""
    return f"inference Z{n_layers}", f"inference A{n_layers}"


def compare_inference(actual: tuple[np.ndarray, np.ndarray], desired: tuple[np.ndarray, np.ndarray],
                      dtype: str, n_layers: int, bound: float | None = None) -> list[Comparison]:
    """Compare ``actual`` = (Z_L, A_L) of one backend's inference with ``desired``'s (the
    reference): shape, dtype, then the normwise relative error against the forward bound."""
    bound = tolerance(dtype, "forward") if bound is None else bound
    results = [_compare_one(name, n_layers, "inference", got, want, dtype, bound)
               for name, got, want in zip(inference_names(n_layers), actual, desired, strict=True)]
    _notify(dtype, results)
    return results
