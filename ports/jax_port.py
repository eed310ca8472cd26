"""Your own JAX function and its parameter pytree as a side of ``compare``.

A JAX model is a function and a pytree: nothing in it says which array is which layer's kernel, so,
as with your NumPy layers (:mod:`ports.numpy_port`), you declare the spec and say where each
declared tensor lives. A ``file.py:factory`` side whose factory returns a :class:`JaxPort`:

* ``spec``: the :class:`scratch.spec.ModelSpec` your function computes (a ModelSpec, its dict or
  JSON); a dict or JSON optimizer without a ``convention`` is taken in optax's (``"optax"``);
* ``apply(params, x, training) -> out``: x channels-first (m, n) or (m, C, H, W), a JAX array in
  the spec's dtype. compare calls it with ``training=True`` for the training-mode quantities; it
  gets no random key and **must not drop units** (dropout is off in every comparison: give compare
  your function with dropout off). ``out`` is what ``returns`` says. With batch_norm layers in the
  spec, ``apply(params, state, x, training) -> (out, new_state)`` instead (flax's
  ``mutable=["batch_stats"]`` pattern): ``state`` the pytree of running statistics, ``new_state``
  them moved by a training-mode batch (compare keeps it only after an optimizer step);
* ``returns``: ``"logits"`` (Z_L, before the spec's output activation; the default for a cce or bce
  spec) or ``"outputs"`` (A_L, after it; the default for mse);
* ``params``: your pytree (dicts, lists, tuples, named tuples…);
* ``paths``: ``{(layer number, declared name): path}`` for every tensor the spec declares
  (``dense``: ``W``, ``b``; ``conv2d``: ``W``, ``b``; ``layer_norm``: ``gamma``, ``beta``; ``prelu``:
  ``alpha``), a path being the tuple of keys that reaches the leaf (``("dense1", "kernel")``, or
  ``("layers", 0, "W")`` for a list); every leaf of ``params`` must be mapped (``jax.grad`` takes
  them all);
* ``layouts``: how a leaf holds its tensor where it is not the canonical layout, by layer kind
  (``{"dense": "in_out"}``: that kind's kernels) or by one tensor (``{(2, "W"): "in_out"}``, which
  wins): dense ``W`` is
  ``out_in`` (canonical, (n_l, n_{l−1}): ``x @ W.T``) or ``in_out`` (``x @ W``, flax's and Keras's
  kernel); conv2d ``W`` is ``OIHW`` (canonical) or ``HWIO`` (flax's); the rest canonical only;
* ``loss``: optional ``loss(out, targets) -> scalar``, the mean over the batch; without it the
  spec's loss as the JAX twin computes it (optax's softmax / sigmoid cross-entropy of the logits,
  the squared error of A_L; from ``returns="outputs"``, of the logits log a, log a − log(1 − a)).
  Targets: one-hot (m, classes) for cce, (m, 1) 0/1 for bce, (m, n) for mse;
* ``optimizer``: optional optax ``GradientTransformation``; default the spec's optimizer as the JAX
  twin builds it (:func:`twins.jax_optimizers.optimizer`); its state starts afresh on every load;
* ``state``, ``state_paths``: with batch_norm layers, the running statistics' pytree and
  ``{(layer number, "running_mean" | "running_var"): path}`` for each, every leaf mapped, each of
  shape (C,);
* ``own_weights``: compare your pytree's values and statistics (else they take the other side's).

What is differentiated: ``loss(out, targets) + (λ/2)·Σ‖W_l‖²`` over the dense and conv2d kernels
when the spec declares ``l2 = λ > 0`` (the twin's L2; your loss never sees the parameters), with
``jax.grad`` with respect to your whole pytree (the moved statistics an auxiliary output).

Why a mapping rather than your own conversion functions: every path is checked to exist, every
leaf's shape against the declared layout, and no leaf is left out — a wrong or missing entry is
one :class:`ports.reading.PortError` naming it, before anything runs. A square kernel declared in
the wrong layout still loads; the faithfulness check (your function against the JAX twin of the
spec) finds it. Precision: importing this module imports :mod:`twins.jax_backend`, which enables
``jax_enable_x64`` process-wide, as the twin needs; every leaf is cast to the spec's dtype.
Your functions run under ``jax.jit`` where they trace (``training`` a static argument), else
eagerly; an exception in your code is one PortError naming the call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.tree_util import tree_flatten_with_path, tree_unflatten

from ports.declared import declared_spec
from ports.reading import Finding, PortError, Reading
from scratch.errors import BackendError
from twins.jax_backend import ACTIVATION_FUNCTIONS, Config, _jit, _mean_loss, _penalty
from twins.jax_optimizers import optimizer as spec_optimizer

# layout name → the axes taking the canonical tensor to the leaf (None: the canonical layout itself)
LAYOUTS = {("dense", "W"): {"out_in": None, "in_out": (1, 0)},
           ("conv2d", "W"): {"OIHW": None, "HWIO": (2, 3, 1, 0)}}
RETURNS = ("logits", "outputs")


@dataclass
class JaxPort:
    spec: Any
    apply: Callable
    params: Any
    paths: dict = field(default_factory=dict)
    layouts: dict = field(default_factory=dict)
    returns: str | None = None
    loss: Callable | None = None
    optimizer: Any = None
    own_weights: bool = False
    state: Any = None
    state_paths: dict = field(default_factory=dict)


def _key(entry):
    """A plain key of one step of a JAX key path (dict key, sequence index or attribute name)."""
    for attribute in ("key", "idx", "name"):
        if hasattr(entry, attribute):
            return getattr(entry, attribute)
    return str(entry)


@dataclass(frozen=True)
class Slot:
    """Where the declared tensor ``name`` of ``layer`` lives: leaf ``index`` of the flattened
    pytree, ``axes`` from the canonical layout to the leaf's (None: the same)."""

    layer: int
    name: str
    path: tuple
    index: int
    axes: tuple[int, ...] | None
    l2: bool

    def to_leaf(self, canonical):
        return canonical if self.axes is None else jnp.transpose(canonical, self.axes)

    def to_canonical(self, leaf) -> np.ndarray:
        leaf = np.asarray(leaf)
        return np.array(leaf if self.axes is None else np.transpose(leaf, np.argsort(self.axes)))


def _check_keys(given: dict, wanted, field_name: str, what: str, known: str, hint: str = "") -> None:
    """One PortError naming the first key of ``given`` that is not in ``wanted``, else every key of
    ``wanted`` that ``given`` lacks (``field_name``: where the user wrote them)."""
    unknown = [key for key in given if key not in wanted]
    if unknown:
        raise PortError(f"{field_name}: {unknown[0]!r} is no {what}; {known} "
                        f"{', '.join(f'({n}, {name!r})' for n, name in wanted)}")
    missing = [key for key in wanted if key not in given]
    if missing:
        raise PortError(f"{field_name}: no path for {', '.join(map(repr, missing))}{hint}")


def _slots(port: JaxPort, spec, source: str, leaves: dict[tuple, Any]) -> list[list[Slot]]:
    """Per layer of ``spec.parameter_layers``, the :class:`Slot` of each declared tensor, every
    entry of ``paths`` and ``layouts`` checked (one PortError naming the first that is wrong)."""
    numbered, where = spec.numbered_layers, f"{source}: JaxPort"
    declared = {(number, tensor.name): tensor for number in spec.parameter_layers
                for tensor in numbered[number - 1].tensors if tensor.trainable}
    _check_keys(port.paths, declared, f"{where}.paths", "declared tensor", "the spec declares")
    kinds = {layer.kind for layer in numbered} & {kind for kind, _ in LAYOUTS}
    for key in port.layouts:
        if key not in declared and key not in kinds:
            raise PortError(f"{where}.layouts: {key!r} is neither a declared tensor (layer, name) nor a "
                            f"layer kind of the spec with more than one layout ({', '.join(sorted(kinds))})")
    order = list(leaves)
    slots, used = [], {}
    for number, shapes in zip(spec.parameter_layers, spec.parameter_shapes, strict=True):
        kind, held = numbered[number - 1].kind, []
        trainable = [tensor for tensor in numbered[number - 1].tensors if tensor.trainable]
        for tensor, shape in zip(trainable, shapes, strict=True):
            key = (number, tensor.name)
            raw = port.paths[key]
            path = raw if isinstance(raw, tuple) else (raw,)
            if path not in leaves:
                raise PortError(f"{where}.paths: params has no leaf at {path!r} (layer {number} "
                                f"{tensor.name}); its leaves are at {', '.join(map(repr, order))}")
            if path in used:
                raise PortError(f"{where}.paths: {path!r} is mapped twice ({used[path]} and {key})")
            used[path] = key
            choices = LAYOUTS.get((kind, tensor.name), {tensor.layout: None})
            layout = port.layouts.get(key, port.layouts.get(kind) if len(choices) > 1 else None)
            if layout is None:
                layout = next(iter(choices))
            if layout not in choices:
                raise PortError(f"{where}.layouts: layer {number} {tensor.name} ({kind}) in layout "
                                f"{layout!r}; known: {', '.join(choices)}")
            axes = choices[layout]
            expected = tuple(shape) if axes is None else tuple(shape[k] for k in axes)
            got = tuple(np.shape(leaves[path]))
            if got != expected:
                raise PortError(f"{where}: params{''.join(f'[{k!r}]' for k in path)} (layer {number} "
                                f"{tensor.name}, {kind}, layout {layout}) has shape {got}, "
                                f"expected {expected}")
            held.append(Slot(number, tensor.name, path, order.index(path), axes, tensor.l2))
        slots.append(held)
    unmapped = [path for path in leaves if path not in used]
    if unmapped:
        raise PortError(f"{where}.paths: params leaf {unmapped[0]!r} is mapped to no declared tensor "
                        "(the spec cannot describe a parameter it does not declare)")
    return slots


STATISTICS = ("running_mean", "running_var")


def _state_slots(port: JaxPort, spec, where: str):
    """(leaves, treedef, [(mean index, variance index)] per batch_norm layer) of ``port.state``,
    every entry of ``state_paths`` checked (one PortError naming the first that is wrong)."""
    wanted = [(number, name) for number in spec.statistics_layers for name in STATISTICS]
    if not isinstance(port.state_paths, dict):
        raise PortError(f"{where}.state_paths: expected a dict, got {type(port.state_paths).__name__}")
    _check_keys(port.state_paths, wanted, f"{where}.state_paths", "running statistic of the spec", "it has",
                " (a spec with batch_norm layers needs state and state_paths)")
    try:
        flat, treedef = tree_flatten_with_path(port.state)
    except Exception as error:                                  # not a pytree JAX can flatten
        raise PortError(f"{where}.state: {type(error).__name__}: {error}") from None
    paths = [tuple(_key(entry) for entry in path) for path, _ in flat]
    indices = {}
    for (number, name), raw in port.state_paths.items():
        path = raw if isinstance(raw, tuple) else (raw,)
        if path not in paths:
            raise PortError(f"{where}.state_paths: state has no leaf at {path!r} (layer {number} {name}); "
                            f"its leaves are at {', '.join(map(repr, paths))}")
        index, channels = paths.index(path), spec.layer_shapes[number - 1][0]
        shape = tuple(np.shape(flat[index][1]))
        if shape != (channels,):
            raise PortError(f"{where}: state{''.join(f'[{k!r}]' for k in path)} (layer {number} {name}) has "
                            f"shape {shape}, expected ({channels},)")
        indices[(number, name)] = index
    unmapped = [path for index, path in enumerate(paths) if index not in indices.values()]
    if unmapped:
        raise PortError(f"{where}.state_paths: state leaf {unmapped[0]!r} is mapped to no running statistic")
    leaves = [jnp.asarray(np.asarray(leaf, dtype=spec.dtype)) for _, leaf in flat]
    return leaves, treedef, [(indices[(n, STATISTICS[0])], indices[(n, STATISTICS[1])])
                             for n in spec.statistics_layers]


def output_activation(spec, z):
    """A_L = g_L(Z_L), the spec's output activation as the JAX twin computes it."""
    return ACTIVATION_FUNCTIONS[spec.output_activation](z, spec.leaky_relu_slope)


def spec_loss(spec, returns: str, out, targets):
    """The spec's mean loss as the JAX twin computes it, from ``out`` as ``returns`` says: from
    outputs A_L, cce and bce read the logits they come from (log a for softmax: softmax(log a) = a;
    log a − log(1 − a) for sigmoid)."""
    if returns == "logits":
        return _mean_loss(spec.loss, out, output_activation(spec, out), targets)
    logits = {"cce": jnp.log(out), "bce": jnp.log(out) - jnp.log1p(-out)}.get(spec.loss, out)
    return _mean_loss(spec.loss, logits, out, targets)


class JaxModel:
    """Your ``apply``, ``params``, loss and optimizer as a :class:`ports.reading.RealModel` (see the
    module docstring). Each function runs under ``jax.jit`` (the twin's compiler options) while your
    code traces, else eagerly, as it is."""

    def __init__(self, port: JaxPort, spec, slots: list[list[Slot]], leaves: list, treedef, returns: str,
                 source: str, statistics=None):
        self.spec, self.slots, self.treedef, self.returns = spec, slots, treedef, returns
        self.apply, self.user_loss, self.source = port.apply, port.loss, source
        self.leaves = leaves
        # batch_norm: (leaves, treedef, [(mean index, variance index)]) of the running statistics
        self.stateful = statistics is not None
        self.stat_leaves, self.stat_treedef, self.stat_slots = statistics if self.stateful else ([], None, [])
        try:
            self.optax = port.optimizer if port.optimizer is not None else spec_optimizer(spec.optimizer,
                                                                                         spec.dtype)
        except BackendError as error:
            raise PortError(f"{source}: JaxPort: the spec's optimizer: {error}") from None
        gradients = jax.value_and_grad(self._total, has_aux=True)
        self.eager = {"init": self.optax.init, "apply": self._forward, "loss": self.user_loss,
                      "outputs": self._outputs, "gradients": gradients, "update": self._update}
        self.compiled = {"outputs": _jit(self._outputs, static_argnums=3),
                         "gradients": _jit(gradients), "update": _jit(self._update)}
        self.state = self._run("init", self.params)

    @property
    def params(self):
        return tree_unflatten(self.treedef, self.leaves)

    @property
    def batch_stats(self):
        """The running statistics' pytree (None without batch_norm layers)."""
        return tree_unflatten(self.stat_treedef, self.stat_leaves) if self.stateful else None

    def _forward(self, params, batch_stats, x, training: bool):
        """(apply's output, the moved running statistics: ``batch_stats`` as they are without state)."""
        if self.stateful:
            return self.apply(params, batch_stats, x, training)
        return self.apply(params, x, training), batch_stats

    def _run(self, what: str, *args):
        """``what`` (a key of ``eager``) on ``args``: compiled while your code traces (then eagerly for
        good: a ``jax.errors.JAXTypeError`` says it does not); an exception in your code is one
        PortError."""
        try:
            if what in self.compiled:
                try:
                    return self.compiled[what](*args)
                except jax.errors.JAXTypeError:
                    del self.compiled[what]
            return self.eager[what](*args)
        except PortError:
            raise
        except Exception as error:                           # your own code
            raise PortError(f"{self.source}: your {what} raised {type(error).__name__}: {error}") from None

    def load(self, tensors, statistics=None) -> None:
        for layer, given in zip(self.slots, tensors, strict=True):
            for slot in layer:
                value = np.asarray(given[slot.name], dtype=self.spec.dtype)
                self.leaves[slot.index] = slot.to_leaf(jnp.asarray(value))
        if self.stateful and statistics:
            for (mean_at, var_at), (mean, var) in zip(self.stat_slots, statistics, strict=True):
                self.stat_leaves[mean_at] = jnp.asarray(np.asarray(mean, dtype=self.spec.dtype))
                self.stat_leaves[var_at] = jnp.asarray(np.asarray(var, dtype=self.spec.dtype))
        self.state = self._run("init", self.params)

    def statistics(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(np.array(self.stat_leaves[mean_at]), np.array(self.stat_leaves[var_at]))
                for mean_at, var_at in self.stat_slots]

    def _x(self, x):
        return jnp.asarray(np.asarray(x, dtype=self.spec.dtype))

    def _a_out(self, out):
        if self.returns == "outputs":
            return out
        return output_activation(self.spec, out)

    def _outputs(self, params, batch_stats, x, training: bool):
        return self._a_out(self._forward(params, batch_stats, x, training)[0])

    def _data_loss(self, out, targets):
        if self.user_loss is not None:
            return self.user_loss(out, targets)
        return spec_loss(self.spec, self.returns, out, targets)

    def _total(self, params, batch_stats, x, targets):
        """(loss(apply(params, x, True), targets) + (λ/2)·Σ‖W_l‖² over the kernels (λ = spec.l2), the
        moved running statistics)."""
        out, moved = self._forward(params, batch_stats, x, True)
        loss = self._data_loss(out, targets)
        if self.spec.l2:
            flat = jax.tree_util.tree_leaves(params)
            kernels = [flat[slot.index] for layer in self.slots for slot in layer if slot.l2]
            loss = loss + _penalty(Config(None, None, None, self.spec.l2), kernels)
        return loss, moved

    def _update(self, grads, state, params):
        updates, state = self.optax.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    def _gradients(self, x, targets):
        """((loss, moved statistics), gradients)."""
        return self._run("gradients", self.params, self.batch_stats, self._x(x), self._x(targets))

    def outputs(self, x, training: bool) -> np.ndarray:
        return np.array(self._run("outputs", self.params, self.batch_stats, self._x(x), bool(training)))

    def loss_and_gradients(self, x, targets):
        (loss, _), grads = self._gradients(x, targets)
        flat = jax.tree_util.tree_leaves(grads)
        return float(loss), [slot.to_canonical(flat[slot.index]) for layer in self.slots for slot in layer]

    def step(self, x, targets):
        (_, moved), grads = self._gradients(x, targets)
        params, self.state = self._run("update", grads, self.state, self.params)
        self.leaves = jax.tree_util.tree_leaves(params)
        if self.stateful:
            self.stat_leaves = jax.tree_util.tree_leaves(moved)
        return self.tensors(), self.statistics()

    def tensors(self) -> list[dict[str, np.ndarray]]:
        return [{slot.name: slot.to_canonical(self.leaves[slot.index]) for slot in layer}
                for layer in self.slots]


def _check_port(port: JaxPort, spec, where: str) -> str:
    """The port's fields checked (one PortError naming the first that is wrong); its ``returns``."""
    if not callable(port.apply):
        raise PortError(f"{where}.apply: expected a function apply(params, x, training) (with batch_norm: "
                        "apply(params, state, x, training) -> (out, new_state)), "
                        f"got {type(port.apply).__name__}")
    if port.loss is not None and not callable(port.loss):
        raise PortError(f"{where}.loss: expected a function loss(out, targets), "
                        f"got {type(port.loss).__name__}")
    if port.optimizer is not None and not all(hasattr(port.optimizer, name) for name in ("init", "update")):
        raise PortError(f"{where}.optimizer: expected an optax GradientTransformation, "
                        f"got {type(port.optimizer).__name__}")
    if not isinstance(port.paths, dict) or not isinstance(port.layouts, dict):
        raise PortError(f"{where}: paths and layouts must be dicts")
    returns = port.returns or ("logits" if spec.loss in ("cce", "bce") else "outputs")
    if returns not in RETURNS:
        raise PortError(f"{where}.returns: {returns!r}; expected one of {', '.join(RETURNS)}")
    return returns


def double_activation(model: JaxModel, spec) -> Finding | None:
    """A double softmax (sigmoid) seen by probing your code on a seeded batch: ``returns="outputs"``
    with your loss equal to the spec's loss *of the logits* applied to those outputs, or
    ``returns="logits"`` for a cce spec whose outputs are already probabilities (rows ≥ 0 summing
    to 1)."""
    if spec.loss not in ("cce", "bce"):
        return None
    cause = "double_softmax" if spec.loss == "cce" else "double_sigmoid"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, *spec.input_shape))
    out = np.asarray(model._run("apply", model.params, model.batch_stats, model._x(x), False)[0],
                     dtype=np.float64)
    if model.returns == "logits":
        rows = out.reshape(len(out), -1)
        if spec.loss == "cce" and np.all(rows >= 0) and np.allclose(rows.sum(axis=1), 1, rtol=0, atol=1e-6):
            return Finding(cause, "the output", "apply's outputs are probabilities (each row sums to 1), "
                                                "yet the JaxPort says returns='logits': compare applies the "
                                                "softmax again")
        return None
    if model.user_loss is None:
        return None
    classes = out.shape[1]
    targets = (np.eye(classes)[rng.integers(0, classes, len(out))] if spec.loss == "cce"
               else rng.integers(0, 2, out.shape).astype(np.float64))
    theirs = float(model._run("loss", model._x(out), model._x(targets)))
    out, targets = jnp.asarray(out), jnp.asarray(targets)
    as_logits, right = (float(spec_loss(spec, returns, out, targets)) for returns in RETURNS)
    if abs(theirs - as_logits) <= 1e-6 * abs(as_logits) < abs(theirs - right):
        activation = "softmax" if spec.loss == "cce" else "sigmoid"
        return Finding(cause, "the loss", f"your loss applies its own {activation} to apply's outputs, which "
                                          f"are probabilities (returns='outputs'): {theirs:.6g} is the "
                                          f"{spec.loss} of them taken as logits, {right:.6g} of them as "
                                          "probabilities")
    return None


def jax_side(port: JaxPort, source: str, float64: bool = False) -> tuple[Reading, JaxModel]:
    """The reading of your JAX function and the :class:`JaxModel` running it (see the module);
    ``float64``: the spec's dtype float64, your leaves cast (x64 is on: :mod:`twins.jax_backend`)."""
    spec = declared_spec(port.spec, source, "JaxPort.spec", convention="optax")
    if float64:
        spec = spec.replace(dtype="float64")
    returns = _check_port(port, spec, f"{source}: JaxPort")
    try:
        flat, treedef = tree_flatten_with_path(port.params)
    except Exception as error:                                  # not a pytree JAX can flatten
        raise PortError(f"{source}: JaxPort.params: {type(error).__name__}: {error}") from None
    leaves = {tuple(_key(entry) for entry in path): leaf for path, leaf in flat}
    slots = _slots(port, spec, source, leaves)
    values = [jnp.asarray(np.asarray(leaf, dtype=spec.dtype)) for leaf in leaves.values()]
    statistics = _state_slots(port, spec, f"{source}: JaxPort") if spec.statistics_layers else None
    if statistics is None and (port.state is not None or port.state_paths):
        raise PortError(f"{source}: JaxPort.state: the spec has no batch_norm layer to hold running "
                        "statistics for")
    model = JaxModel(port, spec, slots, values, treedef, returns, source, statistics)
    tensors = model.tensors()
    found = double_activation(model, spec)
    given = {"loss", "optimizer"} | ({"weights"} if port.own_weights else set())
    notes = (f"your apply returns {returns}; "
             + ("your loss" if port.loss is not None else f"the spec's {spec.loss}")
             + (", your optax optimizer" if port.optimizer is not None else
                f", the spec's {spec.optimizer.name} in optax ({spec.optimizer.convention} convention)"),)
    statistics = model.statistics() if model.stateful else None
    reading = Reading("jax", source, spec, tensors, statistics, notes=notes,
                      findings=(found,) if found else (), given=frozenset(given))
    return reading, model
