"""The engine's layers: each a small class whose backward sits beside its forward.

``Dense`` (``dense.py``) and ``Dropout`` (``dropout.py``) today; the activations are a layer
option (``scratch.activations``), and the fused output pairings (softmax + CCE, sigmoid + BCE)
stay fused in ``scratch.losses``. :class:`scratch.model.MLP` runs a stack of them, and
localization (``MLP.layer_pass``) calls the very same methods, so every formula exists once.
"""

from scratch.layers.dense import Dense
from scratch.layers.dropout import Dropout

__all__ = ["Dense", "Dropout"]
