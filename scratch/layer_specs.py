"""The frozen layer specs a :class:`scratch.spec.ModelSpec` is a sequence of.

Each spec names one layer of the stack and validates its own fields on construction (one clear
:class:`SpecError` naming the field); ``kind`` is its name in the JSON form
``{"kind": "dense", "units": 64, "activation": "relu"}``. Every backend maps a spec to its
framework's own layer in one table; the NumPy engine maps it to ``scratch.layers``.

* :class:`DenseSpec` ``(units, activation)``: Z_l = A_{l−1}·W_lᵀ + b_l, A_l = g(Z_l).
* :class:`DropoutSpec` ``(rate)``: inverted dropout p = ``rate`` on the output of the dense
  layer it follows (A_l ← A_l ⊙ D_l, see ``scratch.batching``); it must follow a hidden layer.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

from scratch.errors import SpecError

HIDDEN_ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh")
OUTPUT_ACTIVATIONS = ("identity", "sigmoid", "tanh", "softmax")
ACTIVATIONS = tuple(dict.fromkeys(HIDDEN_ACTIVATIONS + OUTPUT_ACTIVATIONS))


def field_error(field_name: str, message: str) -> SpecError:
    return SpecError(f"spec field '{field_name}': {message}")


def check_choice(field_name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise field_error(field_name, f"unknown value {value!r}; expected one of {', '.join(choices)}")


def check_real(field_name: str, value: Any, low: float, high: float,
               low_open: bool = False, high_open: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise field_error(field_name, f"expected a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise field_error(field_name, f"{value!r} is outside {left}{low}, {high}{right}")


def check_int(field_name: str, value: Any, low: int) -> int:
    """``value`` as a plain ``int``: any integral type (``int``, ``numpy.int64``, …) but not
    ``bool``; a float, even 3.0, is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise field_error(field_name, f"expected an integer, got {value!r}")
    if value < low:
        raise field_error(field_name, f"expected an integer >= {low}, got {value}")
    return int(value)


@dataclass(frozen=True)
class DenseSpec:
    """A fully connected layer of ``units`` outputs followed by ``activation``. Which
    activations are allowed depends on the layer's place (hidden or output); the model spec
    checks that, since a layer does not know its place."""

    units: int
    activation: str = "relu"
    kind: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", check_int("units", self.units, 1))
        check_choice("activation", self.activation, ACTIVATIONS)


@dataclass(frozen=True)
class DropoutSpec:
    """Inverted dropout with drop probability ``rate`` in (0, 1) (leave the layer out for none)."""

    rate: float
    kind: ClassVar[str] = "dropout"

    def __post_init__(self) -> None:
        check_real("rate", self.rate, 0.0, 1.0, low_open=True)


LAYER_SPECS: dict[str, type] = {spec.kind: spec for spec in (DenseSpec, DropoutSpec)}
LayerSpec = DenseSpec | DropoutSpec


def layer_to_dict(layer: LayerSpec) -> dict[str, Any]:
    return {"kind": layer.kind, **dataclasses.asdict(layer)}


def layer_from_dict(data: Any, where: str) -> LayerSpec:
    """The layer spec of a JSON object ``{"kind": …, fields…}``; ``where`` names it in errors."""
    if not isinstance(data, dict):
        raise SpecError(f"spec field '{where}': expected a JSON object, got {data!r}")
    values = dict(data)
    kind = values.pop("kind", None)
    if kind not in LAYER_SPECS:
        raise SpecError(f"spec field '{where}.kind': unknown layer kind {kind!r}; "
                        f"expected one of {', '.join(LAYER_SPECS)}")
    layer_class = LAYER_SPECS[kind]
    known = [f.name for f in dataclasses.fields(layer_class)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SpecError(f"spec field '{where}.{unknown[0]}': unknown field of a {kind} layer; "
                        f"known fields are {', '.join(known)}")
    try:
        return layer_class(**values)
    except TypeError as error:                                 # a required field is missing
        raise SpecError(f"spec field '{where}': {kind} layer: {error}") from None
    except SpecError as error:
        raise SpecError(str(error).replace("spec field '", f"spec field '{where}.", 1)) from None
