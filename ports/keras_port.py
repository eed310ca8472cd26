"""The Keras side of ``backprop-parity compare``: a ``keras.Model`` read into a
:class:`ports.reading.Reading` and its own :class:`ports.keras_model.KerasModel`.

* :func:`read_keras` reads a model in memory: its layers (``ports.keras_reading``: a Sequential or
  a straight functional chain), its compiled loss and optimizer (``ports.keras_compiled``), its
  dtype, its weights in the canonical layout and BatchNorm's moving statistics. The reading does
  not infer initializers: the spec's ``init`` stays its default (the weights are given).
* :func:`keras_side` reads a ``.keras`` file through
  ``keras.saving.load_model(path, safe_mode=True, compile=True)`` (code in the file, a ``Lambda``
  layer, is refused); the path is checked before Keras is imported. A ``file.py:factory`` that
  returns a ``keras.Model`` runs through :func:`ports.sides.read_side` (the user's own code),
  which reads its model with :func:`read_keras`.

A .keras file does not store its loss's dtype: Keras builds the compiled loss and the optimizer's
learning-rate variable in ``keras.config.floatx()`` at load time, so a float64 model loaded under
float32 would compute its loss in float32. :func:`keras_side` loads the file again under the
weights' dtype where they differ (and says so in the notes).
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

from ports.reading import PortError, Reading
from scratch.errors import SpecError
from scratch.layer_specs import DenseSpec, DropoutSpec
from scratch.spec import ModelSpec

UNCOMPILED_LOSS = {"softmax": "cce", "sigmoid": "bce"}
"""An uncompiled model's spec loss by output activation (mse for any other) until the other side
gives one."""


def read_keras(model, *, source: str, weights_given: bool = True):
    """(the :class:`Reading` of ``model``, its :class:`~ports.keras_model.KerasModel`); a
    :class:`PortError` naming whatever the spec cannot express (module docstring)."""
    import keras

    from ports.keras_compiled import read_loss, read_optimizer
    from ports.keras_model import KerasModel
    from ports.keras_reading import read_layers

    if not isinstance(model, keras.Model):
        raise PortError(f"{source}: expected a keras.Model, got {type(model).__name__}")
    found = read_layers(model)
    numbered = [piece for piece in found.pieces if piece.spec_class is not DropoutSpec]
    if not numbered or numbered[-1].spec_class is not DenseSpec:
        raise PortError(f"{source}: the model must end in a Dense output layer"
                        + (f", not {numbered[-1].where}" if numbered else ""))
    output = numbered[-1].fields["activation"]
    notes = [*found.notes, "the reading does not infer initializers: the spec's init is its default"]
    given = {"weights"} if weights_given else set()
    loss = optimizer = None
    if getattr(model, "compiled", False) and model.loss is not None:
        loss = read_loss(model, output, len(numbered), found.dtype)
        numbered[-1].fields["activation"] = loss.output_activation
        notes += loss.notes
        given.add("loss")
    else:
        notes.append(f"not compiled with a loss: the spec holds {UNCOMPILED_LOSS.get(output, 'mse')} "
                     f"(the loss a {output} output pairs with) until the other side gives one")
    if getattr(model, "compiled", False) and model.optimizer is not None:
        optimizer = read_optimizer(model.optimizer)
        given.add("optimizer")
    else:
        notes.append("not compiled with an optimizer: the spec holds its default optimizer")
    try:
        spec = ModelSpec(inputs=found.inputs,
                         layers=[piece.spec_class(**piece.fields) for piece in found.pieces],
                         loss=loss.loss if loss else UNCOMPILED_LOSS.get(output, "mse"),
                         optimizer=optimizer, dtype=found.dtype,
                         l2=0.0 if found.l2 is None else 2 * found.l2,
                         **({} if found.slope is None else {"leaky_relu_slope": found.slope}))
    except SpecError as error:
        raise PortError(f"{source}: the model reads as no valid spec: {error}") from None
    gelus = [str(number) for number, layer in enumerate(spec.numbered_layers, 1)
             if getattr(layer, "activation", None) in ("gelu", "gelu_tanh")]
    if gelus and spec.dtype == "float64":
        notes.append(f"GELU in layer {', '.join(gelus)}: TensorFlow casts its constant (1/√2, or 0.044715 "
                     "in the tanh form) to float32 even in float64, so this model's own outputs are ~1e-9 "
                     "off the function (its twin rounds alike; the engine and the other frameworks do not)")
    real = KerasModel(model, spec, found.pieces, loss, own_optimizer=optimizer is not None)
    tensors = real.tensors()
    for number, held, shapes in zip(spec.parameter_layers, tensors, spec.parameter_shapes, strict=True):
        read = tuple(array.shape for array in held.values())
        if read != tuple(shapes):
            raise PortError(f"{source}: layer {number} reads as {read}, its spec declares {tuple(shapes)}")
    reading = Reading("keras", source, spec, tensors, real.statistics() if real.moving else None,
                      tuple(notes), loss.findings if loss else (), frozenset(given))
    return reading, real


def keras_side(path: str, float64: bool = False):
    """(Reading, KerasModel) of a ``.keras`` file (module docstring); ``float64``: of its float64
    copy (:func:`in_float64`)."""
    file = Path(path)
    if not file.is_file():
        raise PortError(f"{path}: no such file")
    if not zipfile.is_zipfile(file):
        raise PortError(f"{path}: not a .keras file (a .keras file is a zip archive; give file.py:factory "
                        "for a model built in Python)")
    if float64:
        return read_keras(in_float64(_load_model(file, path)), source=path)
    return _load(file, path)


def _retyped(node):
    """A Keras config with every float32 dtype (a layer's ``DTypePolicy``, an input's ``dtype``)
    float64."""
    if isinstance(node, list):
        return [_retyped(value) for value in node]
    if not isinstance(node, dict):
        return node
    node = {key: _retyped(value) for key, value in node.items()}
    if node.get("class_name") == "DTypePolicy" and node.get("config", {}).get("name") == "float32":
        node["config"] = {**node["config"], "name": "float64"}
    if node.get("dtype") == "float32":
        node["dtype"] = "float64"
    return node


def in_float64(model):
    """The same model in float64: built again from its config with every dtype float64 and each
    layer's own activation function (``keras.ops.gelu`` saves as "gelu", the exact form), its
    weights (and moving statistics) cast — exactly, every float32 is a float64 — and compiled
    again with its loss (an instance of its class, built in float64: a loss given by name would be
    built at the first call, in the float32 floatx) and a fresh optimizer of its class and
    configuration (hyperparameters keep the values Keras held in float32). A float64 model is
    returned as it is."""
    import keras
    import numpy as np

    from ports.keras_compiled import loss_object
    from twins.keras_backend import _floatx

    if all(variable.dtype == "float64" for variable in model.weights):
        return model
    with _floatx("float64"):
        policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float64")
        try:
            copy = model.__class__.from_config(_retyped(model.get_config()))
            for ours, theirs in zip(model.layers, copy.layers, strict=True):
                if hasattr(ours, "activation"):  # the function itself: a config name may reload as another
                    theirs.activation = ours.activation
            copy.set_weights([np.asarray(value, dtype=np.float64) for value in model.get_weights()])
            if getattr(model, "compiled", False):
                optimizer = None if model.optimizer is None else \
                    model.optimizer.__class__.from_config(model.optimizer.get_config())
                loss = None if model.loss is None else loss_object(model)     # one Loss instance
                if loss is not None:             # built here, in float64 (a name would be built later)
                    loss = type(loss)(**loss.get_config(), dtype="float64")
                copy.compile(optimizer=optimizer, loss=loss)
        finally:
            keras.config.set_dtype_policy(policy)
    return copy


def _load(file: Path, path: str):
    import keras

    from ports.keras_reading import chain, model_dtype
    from twins.keras_backend import _floatx

    model = _load_model(file, path)
    dtype = model_dtype(model, chain(model))
    notes = ()
    if dtype != keras.config.floatx():
        with _floatx(dtype):
            model = _load_model(file, path)
        notes = (f"loaded under floatx {dtype}, the weights' dtype, so that its compiled loss and optimizer "
                 "compute in it (a .keras file does not store the loss's dtype)",)
    reading, real = read_keras(model, source=path)
    return Reading(reading.framework, reading.source, reading.spec, reading.tensors, reading.statistics,
                   notes + reading.notes, reading.findings, reading.given), real


def _load_model(file: Path, path: str):
    import keras
    try:
        with warnings.catch_warnings():
            # a model saved before any training step holds fewer optimizer variables than a built
            # one: Keras skips them, and so do we (KerasModel.step starts a fresh optimizer)
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(file, safe_mode=True, compile=True)
    except Exception as error:                         # Keras raises ValueError, TypeError, …
        if "safe_mode" in str(error):
            raise PortError(f"{path}: the file holds Python code (a Lambda layer or a lambda function), "
                            "which keras.saving.load_model refuses with safe_mode=True; the reading takes "
                            "only layers it can read without running code") from None
        raise PortError(f"{path}: keras.saving.load_model failed: {type(error).__name__}: {error}") from None
