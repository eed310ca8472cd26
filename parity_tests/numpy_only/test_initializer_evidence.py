"""``ports.initializers``: which scheme drew a side's kernels, and the sentence compare prints where
two sides' own draws differ; a kernel matching no scheme (trained) or too small is not named."""

from __future__ import annotations

import numpy as np

from ports.initializers import FEWEST, differences, drawn_as
from ports.reading import Reading
from scratch.initializers import initialize_tensors
from scratch.spec import ModelSpec

SPEC = ModelSpec((300, 64, 10), "relu", "softmax")


def reading(init: str, scale: float = 1.0, seed: int = 0) -> Reading:
    spec = SPEC.replace(init=init, seed=seed)
    tensors = [{name: value * scale for name, value in held.items()}
               for held in initialize_tensors(spec, np.float64)]
    return Reading("torch", init, spec, tensors)


def test_each_scheme_is_recognised_in_a_draw_of_its_own():
    for init in ("glorot_uniform", "torch_default", "small_normal", "uniform_half"):
        schemes = drawn_as(reading(init, seed=7))
        assert all(init in names for names, _ in schemes.values()), (init, schemes)


def test_keras_and_torch_draws_are_named_apart():
    lines = differences(reading("glorot_uniform"), reading("torch_default"))
    assert len(lines) == 2 and lines[0].startswith("layer 1 W: A's drawn as ")
    assert "glorot_uniform" in lines[0] and "B's as torch_default" in lines[0]


def test_the_same_scheme_a_trained_kernel_and_a_small_one_say_nothing():
    assert differences(reading("torch_default", seed=1), reading("torch_default", seed=2)) == []
    assert drawn_as(reading("torch_default", scale=3.0))[(1, "W")][0] == []        # no scheme's std
    tiny = ModelSpec((4, 3, 2), "relu", "softmax", init="torch_default")
    assert 4 * 3 < FEWEST
    assert drawn_as(Reading("torch", "tiny", tiny, initialize_tensors(tiny, np.float64))) == {}
