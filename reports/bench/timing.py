"""The training-step benchmark: every backend side by side, interleaved, in one run.

For each grid point (batch size × dtype × optimizer) every backend's step (see
:mod:`reports.bench.steps`) is warmed up, then timed in rounds A B C D A B C D …, so a busy
machine slows all of them alike. Each timing is a block of ``k`` steps (``k`` chosen in warm-up
so a block lasts ≥ ``min_block`` seconds) divided by ``k``. Reported per backend: median and
interquartile range of the per-step time, the ratio of each backend's median to scratch's
(> 1 means slower than scratch), and achieved GFLOP/s. Before each timed block the bench sleeps
``settle`` seconds, so that the threads of the backend timed just before have stopped spinning
(without the pause a two-thread step timed right after the other backends ran markedly slower
than alone: ``docs/speed.md``).

FLOPs of one step at batch m count the products of the kernel layers (dense, conv2d) only: a
layer whose kernel W_l has |W_l| numbers and whose output has P_l positions per channel (1 for
dense, H_out·W_out for conv2d) does 2·m·P_l·|W_l| in its forward product, the same for dW_l and
again for dA_{l−1} (l ≥ 2; the input needs no gradient):
F = Σ_l 2·m·P_l·|W_l|·(3 if l ≥ 2 else 2). For an MLP (n_0, …, n_L): |W_l| = n_{l−1}·n_l, P_l = 1.
A recurrent layer multiplies both of its kernels at each of its T input steps: W_ih as above
with P_l = T, and W_hh at 2·m·T·|W_hh| three times (forward, dW_hh, and the state gradient
handed back to h_{t−1}, which every layer needs).
The GEMM peak is the best of NumPy and torch on one square (n × n)·(n × n) product, same dtype.
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np

from scratch.layer_specs import RECURRENT


def step_flops(spec, batch: int) -> int:
    """Matrix-product FLOPs of one training step of ``spec`` (see the module docstring)."""
    total = 0
    for layer, shapes in zip(spec.parameter_layers, spec.parameter_shapes, strict=True):
        if layer not in spec.kernel_layers:
            continue
        kernel = shapes[0]                   # a kernel layer's first tensor is its W_l (recurrent: W_ih)
        if spec.numbered_layers[layer - 1].kind in RECURRENT:
            steps, recurrent = spec.layer_shapes[layer - 1][0], math.prod(shapes[1])
            total += 2 * batch * steps * (math.prod(kernel) * (3 if layer >= 2 else 2) + 3 * recurrent)
            continue
        out = spec.layer_shapes[layer]
        positions = math.prod(out) // out[0]
        total += 2 * batch * positions * math.prod(kernel) * (3 if layer >= 2 else 2)
    return total


def gemm_peak(dtype: str, size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of the best of ``repeats`` square products in NumPy (and torch if installed)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    out = np.empty_like(a)
    flops = 2 * size ** 3
    result = {"numpy": flops / _best(lambda: np.matmul(a, b, out=out), repeats) / 1e9}
    try:
        import torch
    except ImportError:
        return result
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    tout = torch.empty_like(ta)
    result["torch"] = flops / _best(lambda: torch.matmul(ta, tb, out=tout), repeats) / 1e9
    return result


def _best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def time_interleaved(steps: dict, rounds: int, min_block: float = 0.02, warmup: int = 3,
                     settle: float = 0.0) -> dict:
    """Per-step seconds of every callable in ``steps``, measured in interleaved rounds.

    ``settle`` seconds of sleep before each timed block let the worker threads of the backend
    timed before it stop spinning (OpenBLAS's spin for up to ~0.1 s after a call); otherwise, on
    a machine with as many cores as threads, they take a core from the backend being timed."""
    blocks = {}
    for name, step in steps.items():
        for _ in range(warmup):
            step()
        start = time.perf_counter()
        step()
        one = max(time.perf_counter() - start, 1e-7)
        blocks[name] = max(1, int(np.ceil(min_block / one)))
    samples = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            k = blocks[name]
            if settle:
                time.sleep(settle)
            start = time.perf_counter()
            for _ in range(k):
                step()
            samples[name].append((time.perf_counter() - start) / k)
    summary = {}
    for name, values in samples.items():
        quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        summary[name] = {"median_s": statistics.median(values), "q1_s": quartiles[0], "q3_s": quartiles[2],
                         "steps_per_block": blocks[name], "samples": len(values)}
    return summary
