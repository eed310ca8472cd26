"""Which initializer drew a side's kernels: the ``initializer`` cause, named where two sides that
would each start from their own draw start differently.

A kernel (``TensorSpec.init == "scheme"``: dense and conv2d W) drawn by scheme s has, over its
many elements, the standard deviation s gives it for its fan-in and fan-out. Each scheme of
:data:`scratch.initializers.INITIALIZERS` is drawn once for the side's own spec
(:func:`scratch.initializers.initial_tensors`: the formulas stay there) and a kernel matches the
schemes whose standard deviation is within :data:`MATCH` of its own; kernels of fewer than
:data:`FEWEST` values are not judged (their standard deviation says too little). A trained kernel
usually matches none. ``compare`` loads A's weights into a side that brought none, so this never
changes a verdict: it says how two sides left to their own draws would start apart (Keras draws
glorot_uniform, torch U(±1/√fan_in)).
"""

from __future__ import annotations

import numpy as np

from ports.reading import Reading
from scratch.initializers import INITIALIZERS, initial_tensors

MATCH = 0.1       # relative difference of standard deviations
FEWEST = 256      # values a kernel needs to be judged


def kernels(reading: Reading) -> dict[tuple[int, str], np.ndarray]:
    """{(layer, name): kernel} of every tensor a scheme draws, with at least :data:`FEWEST` values."""
    found = {}
    for layer, held in zip(reading.spec.parameter_layers, reading.tensors, strict=True):
        for tensor in reading.spec.numbered_layers[layer - 1].tensors:
            if tensor.init == "scheme" and np.size(held[tensor.name]) >= FEWEST:
                found[(layer, tensor.name)] = np.asarray(held[tensor.name], dtype=np.float64)
    return found


def drawn_as(reading: Reading) -> dict[tuple[int, str], tuple[list[str], float]]:
    """{(layer, name): (the schemes that match, the kernel's standard deviation)}."""
    observed = kernels(reading)
    if not observed:
        return {}
    expected = {scheme: initial_tensors(reading.spec.replace(init=scheme)) for scheme in INITIALIZERS}
    out = {}
    for (layer, name), kernel in observed.items():
        std = float(kernel.std())
        matches = [scheme for scheme, drawn in expected.items()
                   if abs(std / float(drawn[layer][name].std()) - 1.0) <= MATCH]
        out[(layer, name)] = (matches, std)
    return out


def differences(a: Reading, b: Reading) -> list[str]:
    """One sentence per kernel both sides draw by recognisable schemes, none in common."""
    ours, theirs = drawn_as(a), drawn_as(b)
    lines = []
    for key in sorted(set(ours) & set(theirs)):
        (a_schemes, a_std), (b_schemes, b_std) = ours[key], theirs[key]
        if a_schemes and b_schemes and not set(a_schemes) & set(b_schemes):
            layer, name = key
            lines.append(f"layer {layer} {name}: A's drawn as {' or '.join(a_schemes)} (std {a_std:.3g}), "
                         f"B's as {' or '.join(b_schemes)} (std {b_std:.3g})")
    return lines


def looks_fresh(reading: Reading) -> bool:
    """Whether ``reading`` holds a fresh draw rather than trained or loaded weights: at least one
    kernel judged, every judged kernel matching a scheme, every other trainable tensor at its
    declared start or zero (a drawn bias Keras starts at zero), running statistics at 0 and 1."""
    drawn = drawn_as(reading)
    if not drawn or not all(schemes for schemes, _ in drawn.values()):
        return False
    starts = initial_tensors(reading.spec)
    for layer, held in zip(reading.spec.parameter_layers, reading.tensors, strict=True):
        for tensor in reading.spec.numbered_layers[layer - 1].tensors:
            if not tensor.trainable or tensor.init == "scheme":
                continue
            value = np.asarray(held[tensor.name])
            if not (np.all(value == 0) or np.array_equal(value, starts[layer][tensor.name])):
                return False
    return all(np.all(mean == 0) and np.all(variance == 1) for mean, variance in reading.statistics or ())
