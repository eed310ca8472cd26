"""Weight files of arrays whose memory is not one plain C-ordered block.

A transposed view (``w.T``), a Fortran-ordered copy and a strided slice (``big[::2, 1:]``) hold
the same logical matrix as a C-contiguous array with different strides; a writer that dumped
the raw buffer would store the wrong numbers, and for a SQUARE layer no shape check could
notice (the transpose has the same shape). Saved then loaded, every tensor must equal the
logical array exactly, in both dtypes.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratch.spec import ModelSpec
from scratch.weights import load_weights, save_weights

SIZES = (4, 4, 4, 3)          # W1, W2 square (4×4): a stored transpose has the right shape


def layouts(rng, dtype):
    """(name, weights, biases) triples: each W_l of shape (n_l, n_{l−1}) in an unusual layout."""
    shapes = [(SIZES[l], SIZES[l - 1]) for l in range(1, len(SIZES))]

    def square_transposed(shape):
        return rng.standard_normal(shape[::-1]).astype(dtype).T            # a w.T view

    def fortran(shape):
        return np.asfortranarray(rng.standard_normal(shape).astype(dtype))

    def sliced(shape):
        big = rng.standard_normal((2 * shape[0], shape[1] + 1)).astype(dtype)
        return big[::2, 1:]                                                # strided, offset view

    def reversed_rows(shape):
        return rng.standard_normal(shape).astype(dtype)[::-1]              # negative stride

    biases = [rng.standard_normal(2 * n).astype(dtype)[::2] for n in SIZES[1:]]   # strided biases
    for make in (square_transposed, fortran, sliced, reversed_rows):
        yield make.__name__, [make(shape) for shape in shapes], biases


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_round_trip_keeps_the_logical_array(tmp_path, dtype, rng):
    spec = ModelSpec(SIZES, dtype=dtype)
    for name, weights, biases in layouts(rng, np.dtype(dtype)):
        assert not all(w.flags.c_contiguous for w in weights), name
        expected_w = [np.array(w, order="C") for w in weights]
        expected_b = [np.array(b, order="C") for b in biases]
        path = save_weights(tmp_path / f"{name}.safetensors", spec, weights, biases)
        loaded = load_weights(path)
        for layer, (got, want) in enumerate(zip(loaded.weights, expected_w, strict=True), start=1):
            assert got.shape == want.shape and got.dtype == want.dtype, f"{name}: W{layer}"
            np.testing.assert_array_equal(got, want, err_msg=f"{name}: W{layer}")
        for layer, (got, want) in enumerate(zip(loaded.biases, expected_b, strict=True), start=1):
            np.testing.assert_array_equal(got, want, err_msg=f"{name}: b{layer}")


def test_a_square_transpose_is_not_its_original(tmp_path, rng):
    """The check above can fail: W and Wᵀ (same shape) saved side by side load as different
    matrices, each equal to what was handed in."""
    spec = ModelSpec((4, 4, 4))
    w = rng.standard_normal((4, 4))
    b = np.zeros(4)
    plain = load_weights(save_weights(tmp_path / "plain.safetensors", spec, [w, w], [b, b]))
    transposed = load_weights(save_weights(tmp_path / "t.safetensors", spec, [w.T, w], [b, b]))
    np.testing.assert_array_equal(plain.weights[0], w)
    np.testing.assert_array_equal(transposed.weights[0], w.T)
    assert not np.array_equal(plain.weights[0], transposed.weights[0])


def test_saving_does_not_touch_the_arrays(tmp_path, rng):
    """The caller's views keep their values and layout (the writer copies, never rewrites)."""
    spec = ModelSpec((4, 4, 4))
    base = rng.standard_normal((4, 4))
    view = base.T
    before = base.copy()
    save_weights(tmp_path / "w.safetensors", spec, [view, base], [np.zeros(4), np.zeros(4)])
    np.testing.assert_array_equal(base, before)
    assert view.base is base and view.flags.f_contiguous
