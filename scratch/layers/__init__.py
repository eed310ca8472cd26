"""The engine's layers: each a small class whose backward sits beside its forward.

``Dense`` (``dense.py``) and ``Dropout`` (``dropout.py``) in the model today; ``Conv2D``
(``conv.py``, im2col/col2im) is checked alone against finite differences and torch, TensorFlow
and JAX, and joins the spec's layer list next. The activations are a layer
option (``scratch.activations``), and the fused output pairings (softmax + CCE, sigmoid + BCE)
stay fused in ``scratch.losses``. :class:`scratch.model.MLP` runs a stack of them, and
localization (``MLP.layer_pass``) calls the very same methods, so every formula exists once.
"""

from scratch.layers.conv import Conv2D
from scratch.layers.dense import Dense
from scratch.layers.dropout import Dropout

__all__ = ["Conv2D", "Dense", "Dropout"]
