"""The named tensors a layer kind declares once (``scratch.layer_specs``), and what derives from them.

A :class:`TensorSpec` says everything the rest of the project needs about one tensor of a layer:

* ``name``: the engine's and the trace's name (``W``, ``b``, ``gamma``, ``alpha``, …): a trace
  holds its gradient as :func:`gradient_name` ``d<name><l>`` (dW1, db1, dgamma2, dbeta2, dalpha3);
* ``stored``: its name in the weight file, ``layers.<i>.<stored>`` (format 2: torch's attribute
  names, so BatchNorm's γ stays ``weight`` as every file written before holds it);
* ``shape``: a function (layer spec, shape of one sample of A_{l−1}) → the tensor's shape;
* ``layout``: the canonical layout of the file (``out_in``, ``OIHW``, ``per_channel``, …);
* ``role``: ``trainable`` (the optimizer updates it) or ``statistic`` (a running average the
  forward pass moves: BatchNorm's mean and variance);
* ``l2``: whether the L2 penalty (λ/2)‖θ‖² applies (dense and conv2d kernels only);
* ``init``: how it starts — ``scheme`` (the spec's kernel initializer draws it, with fan_in =
  C·k_h·k_w of the shape (O, C, k_h, k_w) or (out, in)), ``scheme_bias`` (the bias that same draw
  returns beside it), ``zeros``, ``ones``, or ``field:<name>`` (a constant, the layer spec's field
  ``<name>``: PReLU's start slope is a convention the report can name);
* ``offset``: an additive per-output-channel shift (a bias): a BatchNorm right after the layer
  removes it again (``ModelSpec.cancelled_biases``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ROLES = ("trainable", "statistic")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    stored: str
    shape: Callable[[Any, tuple[int, ...]], tuple[int, ...]]
    layout: str
    role: str = "trainable"
    l2: bool = False
    init: str = "zeros"
    offset: bool = False

    @property
    def trainable(self) -> bool:
        return self.role == "trainable"


def gradient_name(name: str, layer: int | str = "") -> str:
    """``d<name><l>``: the one name of the gradient dL/d<name>_l in every trace, report and test
    (``gradient_name("gamma", 2)`` is ``dgamma2``); without ``layer``, the stem a layer's own pass
    (``layer_trace``) keys it by."""
    return f"d{name}{layer}"


def per_channel(layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    """(C,) of (C, H, W) maps or (n,) of flat features: one value per channel."""
    return (shape[0],)
