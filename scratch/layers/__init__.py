"""The engine's layers: each a small class whose backward sits beside its forward.

``Dense`` (``dense.py``) and ``Dropout`` (``dropout.py``) in the model today. ``Conv2D``
(``conv.py``, im2col/col2im), the pooling and flattening layers (``pooling.py``) and
``BatchNorm`` / ``LayerNorm`` (``normalization.py``) are checked alone against finite
differences and the frameworks, and join the spec's layer list next. The activations are a
layer option (``scratch.activations``), and the fused output pairings (softmax + CCE,
sigmoid + BCE) stay fused in ``scratch.losses``. :class:`scratch.model.MLP` runs a stack of
them, and localization (``MLP.layer_pass``) calls the very same methods, so every formula
exists once.
"""

from scratch.layers.conv import Conv2D
from scratch.layers.dense import Dense
from scratch.layers.dropout import Dropout
from scratch.layers.normalization import BatchNorm, LayerNorm
from scratch.layers.pooling import AvgPool2D, Flatten, GlobalAveragePooling2D, MaxPool2D

__all__ = ["AvgPool2D", "BatchNorm", "Conv2D", "Dense", "Dropout", "Flatten", "GlobalAveragePooling2D",
           "LayerNorm", "MaxPool2D"]
