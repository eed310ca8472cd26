"""Backends by name, imported lazily, all usable in one process."""

from __future__ import annotations

import importlib
import importlib.util

from scratch.errors import BackendError
from scratch.spec import ModelSpec

# name → (module, class, the framework module it needs)
BACKENDS = {
    "scratch": ("twins.scratch_backend", "ScratchBackend", "numpy"),
    "torch": ("twins.torch_backend", "TorchBackend", "torch"),
    "keras": ("twins.keras_backend", "KerasBackend", "tensorflow"),
    "jax": ("twins.jax_backend", "JaxBackend", "jax"),
}

# (actual, desired) pairs, defined once for the suite, `check` and the report: each framework
# against the NumPy engine, then the frameworks against each other.
PAIRS = (("torch", "scratch"), ("keras", "scratch"), ("jax", "scratch"),
         ("keras", "torch"), ("jax", "torch"))

# The framework twins, in the order they are asked to referee a free-running pair in float64 where
# the engine is a side and its own higher-precision run cannot decide (judge.trajectory): never a
# side of the pair itself; one that is not installed or cannot run the spec is passed over.
REFEREES = ("jax", "torch", "keras")

# The framework twins that train each optimizer convention with their own optimizers; any other
# refuses it with a BackendError. Plain SGD is the same in every convention: every twin runs it.
CONVENTION_TWINS = {"torch": ("torch", "jax"), "keras": ("keras", "jax"), "optax": ("jax",)}
# … except these (twin, optimizer, convention): optax cannot express Keras's Adam (its ε acts
# as ε/√(1 − β₂ᵗ), which no constant eps or eps_root gives).
REFUSED = {("jax", "adam", "keras")}


def twins_for(name: str, convention: str) -> tuple[str, ...]:
    """The framework twins that can train optimizer ``name`` in ``convention``."""
    if name == "sgd":
        return tuple(twin for twin in BACKENDS if twin != "scratch")
    return tuple(twin for twin in CONVENTION_TWINS[convention] if (twin, name, convention) not in REFUSED)


# the extra that installs a backend's framework
INSTALL_EXTRAS = {"torch": "torch", "tensorflow": "tf", "jax": "jax"}


def available_backends() -> list[str]:
    """The backends whose framework is installed (without importing it)."""
    return [name for name, (_, _, needs) in BACKENDS.items() if importlib.util.find_spec(needs)]


def make_backend(name: str, spec: ModelSpec, weights=None, biases=None, statistics=None, *, tensors=None):
    """The backend called ``name`` holding a copy of the named ``tensors`` ({name: array} per layer
    with parameters), or of ``weights``/``biases`` (a stack of (W, b)-shaped layers), canonical
    layout, and of BatchNorm's running ``statistics`` (None: mean 0, variance 1)."""
    try:
        module_name, class_name, needs = BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}") from None
    if importlib.util.find_spec(needs) is None:
        raise BackendError(f"backend {name!r} needs {needs}, which is not installed "
                           f"(pip install 'backprop-parity[{INSTALL_EXTRAS[needs]}]')")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    named = {} if tensors is None else {"tensors": tensors}
    if statistics is None:
        return backend_class(spec, weights, biases, **named)
    return backend_class(spec, weights, biases, statistics=statistics, **named)


def make_backend_from_file(name: str, path):
    """The backend called ``name`` loaded from a shared weight file."""
    from scratch.weights import load_weights

    loaded = load_weights(path)
    return make_backend(name, loaded.spec, statistics=loaded.statistics or None, tensors=loaded.tensors)
