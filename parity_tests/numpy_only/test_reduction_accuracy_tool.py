"""``tools/reduction_accuracy.py``: its bound n·u·(operand scale) holds for the worst summation
order (one sequential accumulator per channel, TensorFlow's NHWC column sum), its exact reference
agrees with a float64 computation, a real BatchNorm bug exceeds the float64 bound, and bad
arguments exit 2 before anything runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import reduction_accuracy as tool  # noqa: E402

from judge.parity import relative_error  # noqa: E402

N = 10_000


def sequential_batch_norm(x: np.ndarray) -> np.ndarray:
    """BatchNorm of float32 (m, C, H, W) with every per-channel sum taken by one float32
    accumulator, in order (what TensorFlow's reduce over the outer NHWC axes does for C = 4)."""
    n = x.size // x.shape[1]
    rows = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(-1, x.shape[1])     # (n, C)
    mean = np.cumsum(rows, axis=0, dtype=np.float32)[-1] / np.float32(n)
    centered = rows - mean
    variance = np.cumsum(centered * centered, axis=0, dtype=np.float32)[-1] / np.float32(n)
    x_hat = centered / np.sqrt(variance + np.float32(tool.EPSILON))
    return x_hat.reshape(x.shape[0], x.shape[2], x.shape[3], -1).transpose(0, 3, 1, 2)


def test_sequential_float32_sum_stays_within_the_bound_and_the_wrong_unit_roundoff_does_not():
    x = tool.make_input("batchnorm", N, seed=0).astype(np.float32)
    error = relative_error(sequential_batch_norm(x), tool.reference("batchnorm", x).astype(np.float64))
    assert error <= tool.bound("batchnorm", x, "float32")
    assert error > tool.bound("batchnorm", x, "float64")           # the check can fail


def test_reference_agrees_with_a_float64_computation():
    x = tool.make_input("layernorm", N, seed=1)
    mean = x.mean(axis=1, keepdims=True)
    plain = (x - mean) / np.sqrt(x.var(axis=1, keepdims=True) + tool.EPSILON)
    assert relative_error(plain, tool.reference("layernorm", x).astype(np.float64)) < 1e-14


@pytest.mark.parametrize("bug", tool.BUGS)
def test_a_real_batch_norm_bug_exceeds_the_float64_bound(bug):
    x = tool.make_input("batchnorm", N, seed=0)
    exact = tool.reference("batchnorm", x).astype(np.float64)
    error = relative_error(tool.buggy(bug, x).astype(np.float64), exact)
    assert error > 100 * tool.bound("batchnorm", x, "float64")


@pytest.mark.parametrize("argv, flag", [
    (["--sizes", "1e6"], "--sizes"), (["--sizes", "10"], "--sizes"), (["--sizes", "1009"], "--sizes"),
    (["--backends", "mxnet"], "--backends"),
    (["--ops", ""], "--ops"), (["--threads", "0"], "--threads"), (["--mnist-rows", "0"], "--mnist-rows")])
def test_bad_arguments_exit_2_naming_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as raised:
        tool.parse(argv)
    assert raised.value.code == 2
    assert flag in capsys.readouterr().err


def test_shapes_hit_n():
    for n in (100, 1000, 50_176, 10**6):
        assert np.prod(tool.make_input("batchnorm", n, 0).shape) // 4 == n
        assert np.prod(tool.make_input("gap", n, 0).shape[2:]) == n
    assert tool.make_input("batchnorm", 50_176, 0).shape == (64, 4, 28, 28)
