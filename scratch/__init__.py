"""The from-scratch NumPy engine: an N-layer perceptron with hand-derived backprop.

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
