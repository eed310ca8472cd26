"""Two readings of the same model can differ in form only: B put in A's form, exactly.

A faithful port need not hold its parameters in the same form as the original. Two forms compute
the same function here, and :func:`align` rewrites B's reading in A's form:

* **Flatten order.** Flattening (C, H, W) channels-first (torch's ``nn.Flatten`` on NCHW) and
  channels-last (Keras's ``Flatten`` on NHWC) orders the features differently; a dense layer right
  after computes the same when its kernel's columns are permuted to match: with P the permutation
  taking channels-last positions to channels-first ones, W_last = W_first[:, P]. Gradients permute
  the same way, so :meth:`Alignment.tensors` maps B's gradients and trained tensors too.
* **Padding.** ``"same"``, ``"valid"`` and explicit amounts (top, bottom, left, right) name the
  same padding when :func:`scratch.layers.conv.padding_amounts` gives the same amounts.

After alignment, any difference left between the readings is a real one: a convention or a
mistake (:mod:`ports.causes`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ports.reading import PortError, Reading
from scratch.layer_specs import Conv2DSpec, DenseSpec, FlattenSpec
from scratch.layers.conv import padding_amounts


def flatten_permutation(shape: tuple[int, int, int], to_order: str) -> np.ndarray:
    """P with features_in_to_order = features_in_other_order[P] for (C, H, W) maps: the columns of
    a dense kernel that follows a flatten of the other order, reindexed for ``to_order``."""
    channels, height, width = shape
    index = np.arange(channels * height * width).reshape(channels, height, width)   # channels-first
    if to_order == "channels_last":
        return index.transpose(1, 2, 0).reshape(-1)      # position j (HWC order) holds CHW feature P[j]
    return np.argsort(index.transpose(1, 2, 0).reshape(-1))


def same_padding(layer: Conv2DSpec, other: Conv2DSpec, shape: tuple[int, ...]) -> bool:
    """Whether two conv2d layers on input ``shape`` (C, H, W) pad by the same amounts."""
    def amounts(conv):
        return padding_amounts(conv.padding, shape[1:], conv.kernel_size, conv.strides, conv.dilation)
    return amounts(layer) == amounts(other)


@dataclass(frozen=True)
class Alignment:
    """B in A's form: ``reading`` (B's reading rewritten) and the column permutations applied to
    the kernels of the dense layers after a re-ordered flatten ({layer number: P})."""

    reading: Reading
    permutations: dict[int, np.ndarray]

    def tensors(self, tensors: list[dict[str, np.ndarray]], spec) -> list[dict[str, np.ndarray]]:
        """B's named tensors (or their gradients, keyed the same) in A's form."""
        out = []
        for number, held in zip(spec.parameter_layers, tensors, strict=True):
            permutation = self.permutations.get(number)
            out.append({name: (value[:, permutation] if permutation is not None and name == "W" else value)
                        for name, value in held.items()})
        return out


def structure_differences(a: Reading, b: Reading) -> list[str]:
    """What makes the two stacks different models, not two forms of one: input shapes, the number
    of layers, a layer's kind or size. Empty when they can be compared layer by layer."""
    problems = []
    if a.spec.input_shape != b.spec.input_shape:
        problems.append(f"inputs: {a.spec.input_shape} in A, {b.spec.input_shape} in B")
    if len(a.spec.layers) != len(b.spec.layers):
        problems.append(f"A has {len(a.spec.layers)} layers ({a.spec.describe_stack()}), "
                        f"B has {len(b.spec.layers)} ({b.spec.describe_stack()})")
        return problems
    for position, (ours, theirs) in enumerate(zip(a.spec.layers, b.spec.layers, strict=True), 1):
        if ours.kind != theirs.kind:
            problems.append(f"layer {position}: {ours.describe()} in A, {theirs.describe()} in B")
    if not problems and a.spec.layer_shapes != b.spec.layer_shapes:
        # layer_shapes[l] is A_l's shape: [0] the input's, checked above
        for number, (ours, theirs) in enumerate(zip(a.spec.layer_shapes, b.spec.layer_shapes,
                                                    strict=True)):
            if ours != theirs:
                problems.append(f"layer {number}: output shape {ours} in A, {theirs} in B")
                break
    return problems


def align(a: Reading, b: Reading) -> Alignment:
    """B's reading in A's form (see the module docstring); a :class:`PortError` listing
    :func:`structure_differences` when they are not one model."""
    problems = structure_differences(a, b)
    if problems:
        raise PortError("A and B are different models, not two forms of one: " + "; ".join(problems))
    layers, permutations = list(b.spec.layers), {}
    flatten_pending, number = None, 0
    for index, (ours, theirs) in enumerate(zip(a.spec.layers, b.spec.layers, strict=True)):
        number += theirs.kind != "dropout"
        input_shape = b.spec.layer_shapes[number - 1]          # A_{l−1} of numbered layer l
        if isinstance(theirs, FlattenSpec) and theirs.order != ours.order:
            layers[index] = replace(theirs, order=ours.order)
            flatten_pending = (input_shape, ours.order)
        elif isinstance(theirs, Conv2DSpec) and theirs.padding != ours.padding and same_padding(
                ours, theirs, input_shape):
            layers[index] = replace(theirs, padding=ours.padding)
        if isinstance(theirs, DenseSpec) and flatten_pending is not None:
            shape, order = flatten_pending
            permutations[number] = flatten_permutation(shape, order)
        if theirs.kind not in ("flatten", "dropout"):
            flatten_pending = None
    spec = b.spec.replace(layers=tuple(layers))
    alignment = Alignment(b, permutations)
    aligned = replace(b, spec=spec, tensors=alignment.tensors(b.tensors, b.spec))
    return Alignment(aligned, permutations)

