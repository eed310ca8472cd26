"""A torch side of ``backprop-parity compare``: the user's file, its factory and an optional
``state_dict``, read into a :class:`ports.reading.Reading` and a :class:`ports.torch_model.TorchModel`
(:func:`ports.torch_reading.read_torch` reads the module itself).

:func:`torch_side` **runs the user's own code**: it imports the file
(``importlib.util.spec_from_file_location``, executing its top level) and calls its factory, as
the user's own training script would; only point it at code you trust.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ports.reading import PortError, Reading
from ports.sides import call_factory
from ports.torch_model import TorchModel
from ports.torch_reading import read_torch

__all__ = ["TorchModel", "read_torch", "torch_side", "torch_side_from"]

FACTORY_KEYS = ("model", "loss", "optimizer")


def torch_side(path: str, factory: str, state_dict: str | None,
               inputs=None) -> tuple[Reading, TorchModel]:
    """Import ``path``, call its ``factory()`` — an ``nn.Module``, or a dict with ``model`` (the
    module) and optionally ``loss`` (a torch loss module) and ``optimizer`` (a callable
    params → ``torch.optim.Optimizer``) — load ``state_dict`` into the module when given
    (``torch.load(weights_only=True)``, every key matched: ``strict=True``) and read it.
    ``given`` lists ``weights`` only when a state_dict was loaded. ``inputs``: the shape of one
    sample, when the module does not start with ``nn.Linear``."""
    return torch_side_from(call_factory(Path(path), factory), path, factory, state_dict, inputs)


def torch_side_from(made, path: str, factory: str, state_dict: str | None,
                    inputs=None, float64: bool = False) -> tuple[Reading, TorchModel]:
    """:func:`torch_side` of what the factory already returned; ``float64``: the module (and its
    loss) cast with ``.double()`` after its state_dict is loaded."""
    parts = made if isinstance(made, dict) else {"model": made}
    unknown = sorted(set(parts) - set(FACTORY_KEYS), key=str)
    if unknown:
        raise PortError(f"{path}: {factory}() returned a dict with unknown keys {unknown}; expected "
                        f"{', '.join(FACTORY_KEYS)}")
    module = parts.get("model")
    if not isinstance(module, nn.Module):
        raise PortError(f"{path}: {factory}() must return an nn.Module or a dict with 'model' holding one; "
                        f"got {type(module).__name__}")
    if state_dict is not None:
        _load_state_dict(module, state_dict)
    if float64:
        module.double()
        if isinstance(parts.get("loss"), nn.Module):
            parts["loss"].double()
    source = f"{path}:{factory}" + (f" with {state_dict}" if state_dict else "")
    return read_torch(module, inputs=inputs, loss=parts.get("loss"), optimizer=parts.get("optimizer"),
                      weights_given=state_dict is not None, source=source)


def _load_state_dict(module: nn.Module, path: str) -> None:
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:                               # a missing, truncated or unsafe file
        raise PortError(f"{path}: cannot be loaded as a state_dict "
                        f"({type(error).__name__}: {error})") from None
    if not isinstance(state, dict):
        raise PortError(f"{path}: holds a {type(state).__name__}, not a state_dict (a dict of tensors)")
    expected = set(module.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected, key=str)
    if missing or unexpected:
        raise PortError(f"{path}: the state_dict does not match the module: "
                        + "; ".join(part for part in (f"missing keys {missing}" * bool(missing),
                                                       f"unexpected keys {unexpected}" * bool(unexpected))
                                    if part))
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:                            # a shape that does not match
        raise PortError(f"{path}: the state_dict does not fit the module: {error}") from None
