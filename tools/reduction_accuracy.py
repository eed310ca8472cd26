"""How far each backend's float32 (and float64) normalization and pooling sit from an exact
computation of the same inputs, as the reduction grows: ``python tools/reduction_accuracy.py``.

    python tools/reduction_accuracy.py                                 # every table below
    python tools/reduction_accuracy.py --ops batchnorm --sizes 100,50176 --dtypes float32
    KERAS_BACKEND=jax python tools/reduction_accuracy.py --backends keras   # Keras on JAX
    TF_ENABLE_ONEDNN_OPTS=1 python tools/reduction_accuracy.py --tables ops

Tables (Markdown, one per op and dtype), n the number of values each statistic reduces:

* ``batchnorm``  training-mode BatchNorm (γ = 1, β = 0, ε = 1e-3) of X (m, C, s, s), n = m·s²
  values per channel, s the largest side ≤ 28 with s² | n (28 for n = 50 176 = 64·28·28).
  Engine ``scratch.layers.normalization.BatchNorm``, torch ``F.batch_norm``, Keras
  ``layers.BatchNormalization(training=True)`` on the NHWC transpose, JAX the twin's
  ``twins.jax_layers.batch_norm`` (jitted).
* ``layernorm``  LayerNorm over n features of X (4, n): ``scratch`` LayerNorm, ``F.layer_norm``,
  ``layers.LayerNormalization``, ``twins.jax_layers.layer_norm``.
* ``gap``        global average pooling of X (2, 4, H, W), H·W = n (H the largest divisor ≤ √n):
  ``GlobalAveragePooling2D`` (engine, Keras on NHWC), ``nn.AdaptiveAvgPool2d(1)``, ``jnp.mean``.
* ``mnist``      the issue's case: BatchNorm of Z₁ = conv(X) on the first ``m`` MNIST training
  digits (``--mnist-rows``, default 64, n = m·784), 6 filters 5×5 "same", Glorot-uniform from
  seed 5, float32; bias 0 (as initialized) and 0.268 (the background value a trained bias gave).
* ``ops`` (float32): the per-channel mean alone, by op and layout, to name the
  summation behind the BatchNorm rows.
* ``bugs``: real BatchNorm mistakes (ε, unbiased σ², μ over n − 1 values, statistics over all
  channels) computed exactly on float64 inputs, beside the float32 and float64 bounds.

Inputs look like a conv output on MNIST: per channel (or row, or map), a fixed 60 % of the
positions (the same in every sample) hold one background value b = 0.268 + 0.02·c, the rest are
N(b − 0.37, 0.3²), so |μ|/σ ≈ 0.5 and σ² ≈ 70·ε. Drawn in float64 from ``--seed``; the float32
rows round them once. Error: ``judge.parity.relative_error`` (max|a − d|/max|d|) against d,
the op computed in extended precision (``np.longdouble``, a 64-bit significand on x86) from the
same (rounded) inputs; d is rounded to float64 for the comparison, so float64 rows carry up to
~1e-16 of that rounding.

Beside each error, error/bound. Any order of summing n terms has |ŝ − s| ≤ (n − 1)·u·Σ|x_i|
(u = 2⁻²⁴ float32, 2⁻⁵³ float64); so μ̂ is off by ≤ n·u·mean|x|, which moves x̂ = (x − μ)/s
(s = √(σ² + ε)) by n·u·mean|x|/s, and σ̂² (through Σ(x − μ)² or E[x²] − μ²) by ≤ n·u·E[x²],
which moves x̂ by ½·|x̂|·n·u·E[x²]/s². Per channel (row), normwise:

    bound = n·u · max_c [ mean|x_c|/s_c + ½·max|x̂_c|·E[x_c²]/s_c² ] / max|x̂|      (normalization)
    bound = n·u · max_(i,c) mean|x_ic| / max|mean|                                (pooling)

Elementwise steps add a few u, below n·u for n ≥ 100. Exit status: 0, or 2 on a bad argument
(checked before any framework is imported).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))       # the checkout, not an install

OPS = ("batchnorm", "layernorm", "gap")
BACKENDS = ("scratch", "torch", "keras", "jax")
DTYPES = ("float32", "float64")
TABLES = ("layers", "mnist", "ops", "bugs")
EPSILON = 1e-3
BACKGROUND = 0.6                   # the share of positions holding the background value


def _names(text: str, allowed: tuple[str, ...]) -> list[str]:
    names = [t for t in text.split(",") if t]
    bad = [t for t in names if t not in allowed]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{', '.join(bad) or 'nothing'} not among "
                                         f"{', '.join(allowed)}")
    return names


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"integers separated by commas, got {text!r}") from None
    bad = [n for n in sizes if not 100 <= n <= 10**7 or side(n) < 5]
    if bad or not sizes:
        raise argparse.ArgumentTypeError(f"each n in [100, 10⁷] and a multiple of a square map of "
                                         f"side 5…28 (BatchNorm's m × s × s), not {bad or text!r}")
    return sizes


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default=_sizes("100,1000,10000,50176,100000,1000000"))
    parser.add_argument("--ops", type=lambda t: _names(t, OPS), default=list(OPS))
    parser.add_argument("--backends", type=lambda t: _names(t, BACKENDS),
                        default=list(BACKENDS))
    parser.add_argument("--dtypes", type=lambda t: _names(t, DTYPES), default=list(DTYPES))
    parser.add_argument("--tables", type=lambda t: _names(t, TABLES), default=list(TABLES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mnist-rows", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of torch and TensorFlow")
    args = parser.parse_args(argv)
    if not 1 <= args.mnist_rows <= 60000:
        parser.error(f"--mnist-rows: in [1, 60000], got {args.mnist_rows}")
    if args.threads < 1:
        parser.error(f"--threads: at least 1, got {args.threads}")
    return args


# ---- inputs -------------------------------------------------------------------------------------

def side(n: int) -> int:
    """The largest s ≤ 28 with s² | n (BatchNorm maps are s × s, m = n/s²)."""
    return max(s for s in range(1, 29) if n % (s * s) == 0)


def map_shape(n: int) -> tuple[int, int]:
    """(H, W) with H·W = n, H the largest divisor of n ≤ √n."""
    h = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return h, n // h


def mnist_like(rng, shape: tuple[int, ...], groups: int, group_axis: int, mask_shape: tuple[int, ...]):
    """float64 values of ``shape``: per group g (a channel, row, map), background b_g = 0.268 +
    0.02·g on a fixed ``BACKGROUND`` share of the positions ``mask_shape`` (trailing axes, the
    same in every sample), N(b_g − 0.37, 0.3²) elsewhere."""
    b = 0.268 + 0.02 * np.arange(groups)
    b = b.reshape((groups,) + (1,) * (len(shape) - group_axis - 1))
    x = b - 0.37 + 0.3 * rng.standard_normal(shape)
    mask = rng.random(mask_shape) < BACKGROUND
    return np.where(mask, b, x)


def make_input(op: str, n: int, seed: int, channels: int = 4):
    rng = np.random.default_rng([seed, n, OPS.index(op), channels])
    if op == "batchnorm":
        s = side(n)
        return mnist_like(rng, (n // (s * s), channels, s, s), channels, 1, (s, s))
    if op == "layernorm":
        return mnist_like(rng, (4, n), 4, 0, (n,))
    h, w = map_shape(n)
    return mnist_like(rng, (2, 4, h, w), 4, 1, (h, w))


# ---- the extended-precision reference and the bound ---------------------------------------------

def _axes(op: str) -> tuple[int, ...]:
    return {"batchnorm": (0, 2, 3), "layernorm": (1,), "gap": (2, 3)}[op]


def reference(op: str, x) -> np.ndarray:
    """The exact-as-possible output of ``op`` on ``x`` (np.longdouble throughout)."""
    x = np.asarray(x, dtype=np.longdouble)
    axes = _axes(op)
    mean = x.mean(axis=axes, keepdims=True)
    if op == "gap":
        return mean.reshape(x.shape[:2])
    centered = x - mean
    variance = (centered * centered).mean(axis=axes, keepdims=True)
    return centered / np.sqrt(variance + np.longdouble(EPSILON))


def bound(op: str, x, dtype: str) -> float:
    """n·u times the operand-scale factor (module docstring), from ``x``'s values in float64."""
    x = np.asarray(x, dtype=np.float64)
    axes = _axes(op)
    n = math.prod(x.shape[a] for a in axes)
    u = 2.0 ** -24 if dtype == "float32" else 2.0 ** -53
    mean_abs = np.abs(x).mean(axis=axes)
    mean = x.mean(axis=axes)
    if op == "gap":
        return float(n * u * mean_abs.max() / np.abs(mean).max())
    mean_square = (x * x).mean(axis=axes)
    s2 = x.var(axis=axes) + EPSILON
    keep = _keep(x, axes)
    x_hat_max = np.abs((x - mean.reshape(keep)) / np.sqrt(s2).reshape(keep)).max(axis=axes)
    per_group = mean_abs / np.sqrt(s2) + 0.5 * x_hat_max * mean_square / s2
    return float(n * u * per_group.max() / x_hat_max.max())


def _keep(x, axes) -> tuple[int, ...]:
    return tuple(1 if a in axes else d for a, d in enumerate(x.shape))


def conditioning(op: str, x) -> str:
    """|μ|/σ and σ²/ε over the groups, as "lo–hi"."""
    x = np.asarray(x, dtype=np.float64)
    mean, std = x.mean(axis=_axes(op)), x.std(axis=_axes(op))
    ratio = np.abs(mean) / std
    text = f"{ratio.min():.2f}–{ratio.max():.2f}"
    spread = (std ** 2) / EPSILON
    return text if op == "gap" else f"{text}, σ²/ε {spread.min():.0f}–{spread.max():.0f}"


# ---- the backends -------------------------------------------------------------------------------

def scratch_run(op: str, x):
    from scratch.layers.normalization import BatchNorm, LayerNorm
    from scratch.layers.pooling import GlobalAveragePooling2D

    dtype = x.dtype
    if op == "gap":
        return GlobalAveragePooling2D().forward(x)
    c = x.shape[1]
    ones, zeros = np.ones(c, dtype), np.zeros(c, dtype)
    if op == "layernorm":
        return LayerNorm(ones, zeros, epsilon=EPSILON).forward(x)[0]
    norm = BatchNorm(ones, zeros, zeros.copy(), ones.copy(), decay=0.99, epsilon=EPSILON, unbiased=False)
    return norm.forward(x, training=True, update=False)[0]


def torch_run(op: str, x):
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(x)
    if op == "gap":
        return torch.nn.AdaptiveAvgPool2d(1)(t).flatten(1).numpy()
    c = x.shape[1]
    ones, zeros = torch.ones(c, dtype=t.dtype), torch.zeros(c, dtype=t.dtype)
    if op == "layernorm":
        return F.layer_norm(t, (c,), ones, zeros, eps=EPSILON).numpy()
    return F.batch_norm(t, None, None, ones, zeros, training=True, eps=EPSILON).numpy()


def keras_run(op: str, x):
    import keras

    dtype = str(x.dtype)
    if op == "layernorm":
        layer = keras.layers.LayerNormalization(axis=-1, epsilon=EPSILON, dtype=dtype)
        return keras.ops.convert_to_numpy(layer(x))
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    if op == "gap":
        layer = keras.layers.GlobalAveragePooling2D(data_format="channels_last", dtype=dtype)
        return keras.ops.convert_to_numpy(layer(nhwc))
    layer = keras.layers.BatchNormalization(axis=-1, momentum=0.99, epsilon=EPSILON, dtype=dtype)
    return keras.ops.convert_to_numpy(layer(nhwc, training=True)).transpose(0, 3, 1, 2)


def jax_run(op: str, x):
    import jax

    from twins import jax_layers

    c = x.shape[1]
    ones, zeros = np.ones(c, x.dtype), np.zeros(c, x.dtype)
    if op == "gap":
        f = jax.jit(lambda a: jax_layers.apply(jax_layers.Layer("global_avg_pool2d"), (), a)[0])
        return np.asarray(f(x))
    if op == "layernorm":
        return np.asarray(jax.jit(lambda a: jax_layers.layer_norm(a, ones, zeros, EPSILON))(x))
    return np.asarray(jax.jit(lambda a: jax_layers.batch_norm(a, ones, zeros, EPSILON)[0])(x))


RUNS = {"scratch": scratch_run, "torch": torch_run, "keras": keras_run, "jax": jax_run}


def backend_label(name: str) -> str:
    if name == "keras":
        return f"keras ({os.environ.get('KERAS_BACKEND', 'tensorflow')})"
    return {"scratch": "engine"}.get(name, name)


# ---- tables -------------------------------------------------------------------------------------

def _n(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def _cell(error: float, limit: float) -> str:
    return f"{error:.1e} ({error / limit:.0e})"


def layer_tables(args, worst: dict) -> None:
    from judge.parity import relative_error

    titles = {"batchnorm": "BatchNorm (training)", "layernorm": "LayerNorm", "gap": "GlobalAveragePooling2D"}
    for op in args.ops:
        for dtype in args.dtypes:
            print(f"\n### {titles[op]}, {dtype}: error vs exact (error/bound)\n")
            head = ["n", "input", "\\|μ\\|/σ" if op == "gap" else "\\|μ\\|/σ, σ²/ε", "bound"]
            head += [backend_label(b) for b in args.backends]
            print("| " + " | ".join(head) + " |")
            print("|" + "---|" * len(head))
            for n in args.sizes:
                x = make_input(op, n, args.seed).astype(dtype)
                desired = reference(op, x).astype(np.float64)
                limit = bound(op, x, dtype)
                row = [_n(n), "×".join(map(str, x.shape)), conditioning(op, x), f"{limit:.1e}"]
                for name in args.backends:
                    error = relative_error(RUNS[name](op, x), desired)
                    key = (op, dtype, backend_label(name))
                    worst[key] = max(worst.get(key, 0.0), error / limit)
                    row.append(_cell(error, limit))
                print("| " + " | ".join(row) + " |", flush=True)


def mnist_table(args, worst: dict) -> None:
    """The BatchNorm rows on a real first-layer output (module docstring)."""
    from judge.parity import relative_error
    from scratch.datasets import load_mnist
    from scratch.initializers import glorot_uniform
    from scratch.layers.conv import Conv2D

    x = load_mnist(dtype=np.float32).x_train[:args.mnist_rows].reshape(-1, 1, 28, 28)
    weight = glorot_uniform(np.random.default_rng(5), 25, 150, (6, 1, 5, 5))[0].astype(np.float32)
    print(f"\n### BatchNorm of a conv output on the first {len(x)} MNIST digits, float32: error vs exact "
          "(error/bound)\n")
    head = ["bias", "n", "\\|μ\\|/σ, σ²/ε", "bound"] + [backend_label(b) for b in args.backends]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for bias in (0.0, 0.268):
        z = Conv2D(weight, np.full(6, bias, np.float32), padding="same").forward(x)
        desired = reference("batchnorm", z).astype(np.float64)
        limit = bound("batchnorm", z, "float32")
        row = [f"{bias}", _n(len(x) * 784), conditioning("batchnorm", z), f"{limit:.1e}"]
        for name in args.backends:
            error = relative_error(RUNS[name]("batchnorm", z), desired)
            key = ("batchnorm on MNIST", "float32", backend_label(name))
            worst[key] = max(worst.get(key, 0.0), error / limit)
            row.append(_cell(error, limit))
        print("| " + " | ".join(row) + " |", flush=True)


def op_table(args) -> None:
    """The per-channel mean of the BatchNorm input alone, float32, by op and layout."""
    import jax
    import jax.numpy as jnp
    import tensorflow as tf
    import torch

    from judge.parity import relative_error

    xla = tf.function(lambda t: tf.reduce_mean(t, axis=[0, 1, 2]), jit_compile=True)
    graph = tf.function(lambda t: tf.reduce_mean(t, axis=[0, 1, 2]))
    rows = {
        "tf.reduce_mean NHWC axes (0,1,2), eager (Keras's path)":
            lambda x, h: tf.reduce_mean(h, axis=[0, 1, 2]),
        "  same, under tf.function": lambda x, h: graph(tf.constant(h)),
        "  same, tf.function(jit_compile=True) (XLA)": lambda x, h: xla(tf.constant(h)),
        "  same, C = 8 channels (a multiple of the 8-float AVX packet)": None,
        "tf.reduce_mean NCHW axes (0,2,3)": lambda x, h: tf.reduce_mean(x, axis=[0, 2, 3]),
        "tf.reduce_mean on (C, n) rows, axis 1 (innermost)": lambda x, h: tf.reduce_mean(
            np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(x.shape[1], -1), axis=1),
        "np.mean NCHW axes (0,2,3) (the engine)": lambda x, h: x.mean(axis=(0, 2, 3)),
        "np.mean NHWC axes (0,1,2)": lambda x, h: h.mean(axis=(0, 1, 2)),
        "torch.mean NCHW dims (0,2,3)": lambda x, h: torch.from_numpy(x).mean(dim=(0, 2, 3)).numpy(),
        "jnp.mean NCHW axes (0,2,3), jit": lambda x, h: jax.jit(lambda a: jnp.mean(a, (0, 2, 3)))(x),
    }
    print("\n### The per-channel mean alone, float32: error vs exact (error/bound)\n")
    print("| op | " + " | ".join(_n(n) for n in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for label, run in rows.items():
        cells = []
        for n in args.sizes:
            channels = 8 if run is None else 4
            x = make_input("batchnorm", n, args.seed, channels).astype(np.float32)
            nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            result = tf.reduce_mean(nhwc, axis=[0, 1, 2]) if run is None else run(x, nhwc)
            desired = reference("gap", x.transpose(1, 0, 2, 3).reshape(1, channels, -1, 1))[0]
            limit = bound("gap", x.transpose(1, 0, 2, 3).reshape(1, channels, -1, 1), "float32")
            cells.append(_cell(relative_error(np.asarray(result), desired.astype(np.float64)), limit))
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


BUGS = ("ε 1e-5 for 1e-3", "unbiased σ²", "μ over n − 1 values", "statistics over all channels")


def buggy(bug: str, x):
    """BatchNorm on float64 ``x`` with one real mistake (each a realistic bug), in np.longdouble."""
    x = np.asarray(x, dtype=np.longdouble)
    axes, epsilon, n = (0, 2, 3), EPSILON, x.size // x.shape[1]
    if bug == BUGS[3]:
        axes = (0, 1, 2, 3)
    if bug == BUGS[2]:
        per_channel = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1)            # (C, n)
        mean = per_channel[:, :-1].mean(axis=1).reshape(1, -1, 1, 1)
    else:
        mean = x.mean(axis=axes, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    if bug == BUGS[1]:
        variance = variance * n / (n - 1)
    if bug == BUGS[0]:
        epsilon = 1e-5
    return (x - mean) / np.sqrt(variance + np.longdouble(epsilon))


def bug_table(args) -> None:
    from judge.parity import relative_error

    print("\n### Real BatchNorm bugs (float64 inputs, exact arithmetic): error vs exact, beside the bounds\n")
    print("| n | bound float32 | bound float64 | " + " | ".join(BUGS) + " |")
    print("|---|---|---|" + "---|" * len(BUGS))
    for n in args.sizes:
        x = make_input("batchnorm", n, args.seed)
        desired = reference("batchnorm", x).astype(np.float64)
        cells = [f"{relative_error(buggy(bug, x).astype(np.float64), desired):.1e}" for bug in BUGS]
        bounds = [f"{bound('batchnorm', x, dtype):.1e}" for dtype in DTYPES]
        print("| " + " | ".join([_n(n), *bounds, *cells]) + " |", flush=True)


def main(argv=None) -> int:
    args = parse(argv)
    import jax

    jax.config.update("jax_enable_x64", True)      # before Keras reads it (KERAS_BACKEND=jax)
    from twins.hygiene import configure_frameworks

    settings = configure_frameworks(threads=args.threads)
    settings["jax"] = f"{jax.__version__}, x64"
    settings["TF_ENABLE_ONEDNN_OPTS"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "")
    started = time.perf_counter()
    bits = np.finfo(np.longdouble).nmant + 1
    print(f"Seed {args.seed}; ε {EPSILON}; extended precision: {bits}-bit significand")
    for key, value in settings.items():
        print(f"- {key}: {value}")
    worst: dict = {}
    if "layers" in args.tables:
        layer_tables(args, worst)
    if "mnist" in args.tables:
        mnist_table(args, worst)
    if "ops" in args.tables:
        op_table(args)
    if "bugs" in args.tables:
        bug_table(args)
    if worst:
        print("\n### Largest error/bound over the sizes\n")
        print("| op | dtype | " + " | ".join(backend_label(b) for b in args.backends) + " |")
        print("|---|---|" + "---|" * len(args.backends))
        for op, dtype in dict.fromkeys(key[:2] for key in worst):
            cells = [f"{worst[(op, dtype, backend_label(b))]:.2g}" for b in args.backends]
            print(f"| {op} | {dtype} | " + " | ".join(cells) + " |")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
