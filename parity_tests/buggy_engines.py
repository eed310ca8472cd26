"""Copies of the NumPy engine with one realistic bug each, built by overriding one layer method
(the engine in the tree is never edited). The model's backward and the single-layer pass that
localization runs (``MLP.layer_pass``) both carry the bug, as they would in a hand-written engine.
Shared by the NumPy-only checker tests and the framework localization tests."""

from __future__ import annotations

from scratch.layers import Dense, Dropout
from twins.scratch_backend import ScratchBackend


class MaskIgnoredInBackward(Dropout):
    """The classic dropout bug: the mask scales A_l going forward but not dA_l coming back."""

    def backward(self, da, mask):
        return da


class WithoutL2(Dense):
    """λ·W_l left out of dW_l (the penalty still counted in the loss)."""

    def weight_gradient(self, dz, a_prev, l2=0.0):
        return super().weight_gradient(dz, a_prev, 0.0)


class DropoutMaskMissingInBackward(ScratchBackend):
    name = "no-mask-backward"

    def __init__(self, spec, statistics=None, *, tensors):
        super().__init__(spec, statistics, tensors=tensors)
        self.model.dropout = MaskIgnoredInBackward()


class L2MissingOnLayer1(ScratchBackend):
    """The engine with :class:`WithoutL2` in layer :attr:`layer` only."""

    name = "no-l2-layer-1"
    layer = 1

    def __init__(self, spec, statistics=None, *, tensors):
        super().__init__(spec, statistics, tensors=tensors)
        dense = self.model.layers[self.layer - 1]
        self.model.layers[self.layer - 1] = WithoutL2(dense.weight, dense.bias)


class L2MissingOnLayer2(L2MissingOnLayer1):
    name = "no-l2-layer-2"
    layer = 2
