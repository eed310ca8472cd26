"""One side of ``backprop-parity compare``, from what the user names on the command line.

* ``model.keras`` — a saved Keras model, loaded with ``safe_mode=True`` (no Lambda layer's code runs);
* ``file.py:factory`` — **runs your own code**: the file is imported and ``factory()`` called. It
  returns a ``torch.nn.Module`` (or a dict ``{"model": …, "loss": …, "optimizer": params → optim}``),
  a ``keras.Model``, a :class:`ports.numpy_port.NumpyPort` (your NumPy layers) or a
  :class:`ports.jax_port.JaxPort` (your JAX function and its parameter pytree).
  ``file.py:factory@weights.pt`` also loads a torch ``state_dict`` (``torch.load(..., weights_only=True)``);
* anything else — a weight file of this project (``train --save``), run by the engine.

:func:`check_descriptor` checks the names (files exist, the factory is an identifier) with the
standard library only, before any framework is imported; :func:`read_side` reads the side.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from ports.reading import PortError


@dataclass(frozen=True)
class Descriptor:
    text: str
    kind: str                   # "keras", "factory", "weights"
    path: Path
    factory: str | None = None
    state_dict: Path | None = None


def check_descriptor(text: str, label: str) -> Descriptor:
    """The parsed side ``text`` (side ``label``, A or B); a :class:`PortError` naming what is wrong."""
    where = f"side {label} ({text!r})"
    if ".py:" in text:
        file, _, rest = text.partition(".py:")
        factory, _, state = rest.partition("@")
        path = Path(file + ".py")
        if not factory.isidentifier():
            raise PortError(f"{where}: {factory!r} is not a Python function name "
                            "(file.py:factory[@state.pt])")
        if not path.is_file():
            raise PortError(f"{where}: no such file {path}")
        state_dict = Path(state) if state else None
        if state_dict is not None and not state_dict.is_file():
            raise PortError(f"{where}: no such state_dict file {state_dict}")
        return Descriptor(text, "factory", path, factory, state_dict)
    path = Path(text)
    if not path.is_file():
        raise PortError(f"{where}: no such file {path}")
    return Descriptor(text, "keras" if path.suffix == ".keras" else "weights", path)


def call_factory(path: Path, factory: str):
    """Import the user's file (running its top level) and call its ``factory()``; an exception in
    the user's code becomes one :class:`PortError` naming it."""
    if not path.is_file():
        raise PortError(f"{path}: no such file")
    module_spec = importlib.util.spec_from_file_location(f"backprop_parity_user_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise PortError(f"{path}: cannot be imported as a Python file")
    user = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = user                     # so that torch.fx and pickling find it
    try:
        module_spec.loader.exec_module(user)
    except Exception as error:                               # the user's own code
        raise PortError(f"{path}: importing it raised {type(error).__name__}: {error}") from None
    make = getattr(user, factory, None)
    if not callable(make):
        raise PortError(f"{path}: has no function {factory!r}")
    try:
        return make()
    except Exception as error:                               # the user's own code
        raise PortError(f"{path}: {factory}() raised {type(error).__name__}: {error}") from None


def _family(made) -> str:
    """Which framework an object belongs to, from its classes' modules (nothing imported: a
    JaxPort can only exist where the user's file imported :mod:`ports.jax_port`)."""
    from ports.numpy_port import NumpyPort

    if isinstance(made, NumpyPort):
        return "numpy"
    jax_port = sys.modules.get("ports.jax_port")
    if jax_port is not None and isinstance(made, jax_port.JaxPort):
        return "jax"
    target = made.get("model") if isinstance(made, dict) else made
    modules = [cls.__module__ for cls in type(target).__mro__]
    if any(module.startswith("torch.nn") for module in modules):
        return "torch"
    if any(module.startswith("keras") for module in modules):
        return "keras"
    return "unknown"


def read_side(descriptor: Descriptor, inputs=None, float64: bool = False):
    """(reading, real model) of one side; ``inputs``: the sample shape where the side cannot tell;
    ``float64``: the side cast to float64 first (every float32 weight is exactly a float64 one), so
    that neither framework's float32 rounding is taken for a difference between the two models."""
    if descriptor.kind == "weights":
        import numpy as np

        from ports.engine_model import EngineModel
        from ports.reading import Reading
        from scratch.model import Network
        from scratch.weights import load_weights

        loaded = load_weights(descriptor.path)
        spec, tensors, statistics = loaded.spec, loaded.tensors, loaded.statistics or None
        if float64:
            spec = spec.replace(dtype="float64")
            tensors = [{name: value.astype(np.float64) for name, value in held.items()} for held in tensors]
            statistics = statistics and [tuple(value.astype(np.float64) for value in pair)
                                         for pair in statistics]
        network = Network(spec, tensors=tensors, statistics=statistics)
        reading = Reading("weights", descriptor.text, spec, tensors, statistics,
                          given=frozenset({"weights", "loss", "optimizer"}))
        return reading, EngineModel(network)
    if descriptor.kind == "keras":
        from ports.keras_port import keras_side

        return keras_side(str(descriptor.path), float64)
    made = call_factory(descriptor.path, descriptor.factory)
    family = _family(made)
    if family == "numpy":
        from ports.numpy_port import numpy_side

        if descriptor.state_dict is not None:
            raise PortError(f"{descriptor.text}: a NumpyPort takes no @state_dict")
        return numpy_side(made, descriptor.text, float64)
    if family == "jax":
        from ports.jax_port import jax_side

        if descriptor.state_dict is not None:
            raise PortError(f"{descriptor.text}: a JaxPort takes no @state_dict (its params are its weights)")
        return jax_side(made, descriptor.text, float64)
    if family == "torch":
        from ports.torch_port import torch_side_from

        state = None if descriptor.state_dict is None else str(descriptor.state_dict)
        return torch_side_from(made, str(descriptor.path), descriptor.factory, state, inputs, float64)
    if family == "keras":
        from ports.initializers import looks_fresh
        from ports.keras_port import in_float64, read_keras

        if descriptor.state_dict is not None:
            raise PortError(f"{descriptor.text}: a Keras model takes no @state_dict "
                            "(its weights are its own)")
        reading, real = read_keras(in_float64(made) if float64 else made, source=descriptor.text)
        if looks_fresh(reading):        # a model built by the factory, nothing trained or loaded into it
            reading = replace(reading, given=reading.given - {"weights"}, notes=reading.notes + (
                "its weights read as a fresh draw (kernels as an initializer draws them, biases zero): "
                "they are not taken for its own",))
        return reading, real
    raise PortError(f"{descriptor.text}: factory returned {type(made).__name__}; expected a torch.nn.Module "
                    "(or a dict with 'model', 'loss', 'optimizer'), a keras.Model, a "
                    "ports.numpy_port.NumpyPort or a ports.jax_port.JaxPort")
