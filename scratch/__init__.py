"""The from-scratch NumPy engine: a stack of layers with hand-derived backprop.

A :class:`~scratch.spec.ModelSpec` is a list of layer specs (:mod:`scratch.layer_specs`: dense,
dropout, conv2d, max/average/global pooling, flatten, BatchNorm, LayerNorm, PReLU), each kind
declared once with its named tensors (:mod:`scratch.tensor_specs`); :class:`MLP` (the same class as
:class:`scratch.model.Network`) runs it, each layer's backward beside its forward in
:mod:`scratch.layers`, its parameters one ``{name: array}`` per layer (``Network.tensors``). The
twins (:mod:`twins`) build the same stack in torch, Keras and JAX; the judge (:mod:`judge`)
compares them.

Imports NumPy and the standard library only (plus ``safetensors`` for the weight file, loaded
when a file is read or written).
"""

from scratch.errors import BackendError, DataError, ParityError, SpecError, WeightFileError
from scratch.model import MLP, ForwardPass, Gradients, load_model, save_model
from scratch.spec import ModelSpec, OptimizerSpec
from scratch.training import History
from scratch.weights import WeightFile, load_weights, save_weights

__all__ = [
    "MLP", "ForwardPass", "Gradients", "History", "ModelSpec", "OptimizerSpec", "WeightFile",
    "load_model", "save_model", "load_weights", "save_weights",
    "ParityError", "SpecError", "WeightFileError", "DataError", "BackendError",
]
