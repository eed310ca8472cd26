"""The spec a user declares for a side the project cannot read by inspection (your NumPy layers,
:mod:`ports.numpy_port`; your JAX function, :mod:`ports.jax_port`): a :class:`scratch.spec.ModelSpec`,
its dict, or its JSON text."""

from __future__ import annotations

import json
from typing import Any

from ports.reading import PortError
from scratch.errors import ParityError
from scratch.spec import ModelSpec


def declared_spec(value: Any, source: str, owner: str, convention: str | None = None) -> ModelSpec:
    """``value`` as a ModelSpec, or one :class:`PortError` naming ``owner`` (e.g. ``NumpyPort.spec``).
    ``convention``: the optimizer convention of a dict or JSON spec whose optimizer names none (a
    JAX side's optimizer is optax's); a ModelSpec is taken as it is."""
    try:
        if isinstance(value, ModelSpec):
            return value
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                raise PortError(f"{source}: {owner}: malformed JSON ({error})") from None
        if convention is not None and isinstance(value, dict) and isinstance(value.get("optimizer"), dict):
            value = {**value, "optimizer": {"convention": convention, **value["optimizer"]}}
        return ModelSpec.from_dict(value)
    except PortError:
        raise
    except ParityError as error:
        raise PortError(f"{source}: {owner}: {error}") from None
