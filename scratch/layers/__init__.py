"""The engine's layers: each a small class whose backward sits beside its forward.

``Dense`` (``dense.py``), ``Dropout`` (``dropout.py``), ``Conv2D`` (``conv.py``, im2col/col2im),
the pooling and flattening layers (``pooling.py``), ``BatchNorm`` / ``LayerNorm``
(``normalization.py``) and ``PReLU`` (``prelu.py``); the recurrent layers (``recurrent.py``: SimpleRNN,
LSTM, GRU, Embedding, sequence pooling, with backpropagation through time) are engine classes
that no spec kind declares yet. Every layer of the stack answers
``run(A_{l−1}) → (Z_l, cache)`` and ``differentiate(dZ_l, A_{l−1}, cache) → ((the gradient of each
of its declared tensors, in order) or (), dA_{l−1})``; the activations are a
layer option (``scratch.activations``), and the fused output pairings (softmax + CCE, sigmoid +
BCE) stay fused in ``scratch.losses``. :class:`scratch.model.Network` runs a stack of them
(each spec kind of ``scratch.layer_specs`` declares its class and builds it), and localization
(``Network.layer_pass``) calls the very same methods, so every formula exists once.

Each class (and each activation and loss) also carries ``FORMULAS``: quantity (``Z``, ``A``,
``dZ``, ``dH``, ``dA_prev``, or a declared tensor's name for its gradient) → (its math, then
``"method:variable"`` naming the statements that compute it — those assigning ``variable`` in
``method``, or its ``return`` for ``"method:return"``). The backprop study
(:mod:`reports.study.formulas`) quotes those very statements beside the math, so the page shows
the engine's own line, never a copy.
"""

from scratch.layers.conv import Conv2D
from scratch.layers.dense import Dense
from scratch.layers.dropout import Dropout
from scratch.layers.normalization import BatchNorm, LayerNorm
from scratch.layers.pooling import AvgPool2D, Flatten, GlobalAveragePooling2D, MaxPool2D
from scratch.layers.prelu import PReLU

__all__ = ["AvgPool2D", "BatchNorm", "Conv2D", "Dense", "Dropout", "Flatten", "GlobalAveragePooling2D",
           "LayerNorm", "MaxPool2D", "PReLU"]
