"""Conv2D against the frameworks' own convolutions, layer alone: torch ``F.conv2d`` (OIHW,
channels-first), TensorFlow ``tf.nn.conv2d`` (HWIO, channels-last) and JAX
``lax.conv_general_dilated``; forward, dW, db and dX within the tolerance table. ``same`` at
stride 2 is where torch needs the asymmetric padding spelt out (``F.pad``, the odd row and column
at the bottom/right, as TensorFlow pads): the engine's :func:`padding_amounts` gives it."""

from __future__ import annotations

import numpy as np
import pytest

from judge.parity import relative_error
from judge.tolerances import tolerance
from scratch.layers.conv import Conv2D, padding_amounts

CONFIGS = [  # (channels, out, (H, W), (k_h, k_w), stride, dilation, padding)
    (1, 6, (28, 28), (5, 5), 1, 1, "same"),
    (3, 4, (9, 8), (3, 3), 2, 1, "same"),
    (2, 3, (10, 9), (3, 2), 2, 2, "valid"),
    (4, 2, (6, 7), (2, 2), 1, 1, "same"),
    (2, 3, (7, 11), (2, 3), 3, 1, "same"),        # k_h < k_w on H < W (strides: one integer)
]
IDS = [f"c{c}-o{o}-{h}x{w}-k{kh}x{kw}-s{s}-d{d}-{p}" for c, o, (h, w), (kh, kw), s, d, p in CONFIGS]


def engine_case(config, dtype, seed=0):
    channels, out, size, kernel, stride, dilation, padding = config
    rng = np.random.default_rng(seed)
    layer = Conv2D(rng.standard_normal((out, channels, *kernel)).astype(dtype),
                   rng.standard_normal(out).astype(dtype), stride, dilation, padding)
    x = rng.standard_normal((3, channels, *size)).astype(dtype)
    z = layer.forward(x)
    upstream = rng.standard_normal(z.shape).astype(dtype)
    dw, db, dx = layer.backward(upstream, x)
    return layer, x, upstream, {"Z": z, "dW": dw, "db": db, "dX": dx}


def assert_close(got: dict, want: dict, dtype):
    for name, value in want.items():
        kind = "forward" if name == "Z" else "gradient"
        assert got[name].shape == value.shape, name
        error = relative_error(got[name], value)
        assert error <= tolerance(dtype, kind), f"{name}: {error:.2e} > {tolerance(dtype, kind):g}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_torch_conv2d(config, dtype):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    layer, x, upstream, want = engine_case(config, dtype)
    top, bottom, left, right = padding_amounts(layer.padding, x.shape[2:], layer.weight.shape[2:],
                                               layer.stride, layer.dilation)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    wt = torch.from_numpy(layer.weight.copy()).requires_grad_(True)
    bt = torch.from_numpy(layer.bias.copy()).requires_grad_(True)
    z = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt, stride=layer.stride, dilation=layer.dilation)
    z.backward(torch.from_numpy(upstream))
    assert_close({"Z": z.detach().numpy(), "dW": wt.grad.numpy(), "db": bt.grad.numpy(),
                  "dX": xt.grad.numpy()}, want, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_tensorflow_conv2d(config, dtype):
    tf = pytest.importorskip("tensorflow")
    layer, x, upstream, want = engine_case(config, dtype)
    x_nhwc = tf.constant(x.transpose(0, 2, 3, 1))
    kernel = tf.Variable(layer.weight.transpose(2, 3, 1, 0))        # OIHW → HWIO
    bias = tf.Variable(layer.bias)
    padding = layer.padding.upper() if isinstance(layer.padding, str) else None
    if layer.dilation > 1:
        # the raw op's CPU gradient kernels refuse dilation (test_tensorflow_dilation_paths)
        with pytest.raises(tf.errors.InvalidArgumentError, match="dilation rates larger than 1"):
            with tf.GradientTape() as tape:
                tape.watch(x_nhwc)
                z = tf.nn.conv2d(x_nhwc, kernel, strides=layer.stride, padding=padding,
                                 dilations=layer.dilation)
            tape.gradient(z, [x_nhwc, kernel])
        return
    with tf.GradientTape() as tape:
        tape.watch(x_nhwc)
        z = tf.nn.conv2d(x_nhwc, kernel, strides=layer.stride, padding=padding,
                         dilations=layer.dilation) + bias
    dx, dkernel, dbias = tape.gradient(z, [x_nhwc, kernel, bias],
                                       output_gradients=tf.constant(upstream.transpose(0, 2, 3, 1)))
    assert_close({"Z": z.numpy().transpose(0, 3, 1, 2), "dW": dkernel.numpy().transpose(3, 2, 0, 1),
                  "db": dbias.numpy(), "dX": dx.numpy().transpose(0, 3, 1, 2)}, want, dtype)


DILATED = (3, 4, (9, 8), (3, 2), 1, 2, "same")     # stride 1: the only stride Keras dilates at
MODES = ("eager", "tf.function", "xla")


def tf_gradients(forward, x, variables, upstream, mode):
    """(Z, dX, d variables…) of ``forward`` run eagerly, traced or compiled by XLA."""
    import tensorflow as tf

    def run(x_):
        with tf.GradientTape() as tape:
            tape.watch(x_)
            z = forward(x_)
        return [z, *tape.gradient(z, [x_, *variables], output_gradients=tf.constant(upstream))]
    if mode != "eager":
        run = tf.function(run, jit_compile=mode == "xla")
    return [value.numpy() for value in run(tf.constant(x))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tensorflow_dilation_paths(dtype, mode):
    """Which TensorFlow path differentiates a dilated convolution (TF 2.21, CPU). The raw
    ``tf.nn.conv2d(dilations=2)``: its gradient ops ``Conv2DBackpropInput`` and
    ``Conv2DBackpropFilter`` refuse dilation in both dtypes, eagerly and traced; XLA compiles
    them. ``keras.layers.Conv2D(dilation_rate=2)`` (``tf.nn.convolution``: ``SpaceToBatchND`` →
    undilated ``Conv2D`` → ``BatchToSpaceND``) differentiates in every mode and matches the engine,
    which is why the Keras twin runs it. Keras refuses strides > 1 with dilation > 1 itself."""
    tf = pytest.importorskip("tensorflow")
    import keras

    layer, x, upstream, want = engine_case(DILATED, dtype)
    x_nhwc, up_nhwc = x.transpose(0, 2, 3, 1), upstream.transpose(0, 2, 3, 1)
    kernel = tf.Variable(layer.weight.transpose(2, 3, 1, 0))        # OIHW → HWIO
    raw = lambda x_: tf.nn.conv2d(x_, kernel, strides=1, padding="SAME", dilations=2)  # noqa: E731
    if mode == "xla":
        z, dx, dkernel = tf_gradients(raw, x_nhwc, [kernel], up_nhwc, mode)
        assert_close({"Z": z.transpose(0, 3, 1, 2) + layer.bias[:, None, None],
                      "dX": dx.transpose(0, 3, 1, 2), "dW": dkernel.transpose(3, 2, 0, 1)},
                     {k: want[k] for k in ("Z", "dX", "dW")}, dtype)
    else:
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match="(?s)Conv2DBackprop(Input|Filter).*dilation rates larger than 1"):
            tf_gradients(raw, x_nhwc, [kernel], up_nhwc, mode)
    for op in ("Conv2DBackpropInput", "Conv2DBackpropFilter"):
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"{op}.*dilation rates larger than 1"):
            given = (dict(input_sizes=x_nhwc.shape, filter=kernel) if op.endswith("Input")
                     else dict(filter_sizes=kernel.shape, input=tf.constant(x_nhwc)))
            getattr(tf.raw_ops, op)(**given, out_backprop=tf.constant(up_nhwc), strides=[1, 1, 1, 1],
                                    padding="SAME", dilations=[1, 2, 2, 1])
    conv = keras.layers.Conv2D(DILATED[1], DILATED[3], padding="same", dilation_rate=2, dtype=dtype)
    conv.build((None, *x_nhwc.shape[1:]))
    conv.kernel.assign(kernel.numpy())
    conv.bias.assign(layer.bias)
    z, dx, dkernel, dbias = tf_gradients(conv, x_nhwc, [conv.kernel, conv.bias], up_nhwc, mode)
    assert_close({"Z": z.transpose(0, 3, 1, 2), "dW": dkernel.transpose(3, 2, 0, 1), "db": dbias,
                  "dX": dx.transpose(0, 3, 1, 2)}, want, dtype)
    with pytest.raises(ValueError, match="strides > 1.*dilation_rate > 1"):
        keras.layers.Conv2D(2, 3, strides=2, dilation_rate=2, dtype=dtype)


# Every lax convolution compiles (~1 s each here); the stacks of test_conv_parity.py run the
# JAX twin's conv (same at stride 2, non-square kernels, explicit padding) in the default suite,
# so only the dilated configuration, which no stack there has, stays in it; the rest run -m slow.
JAX_CONFIGS = [pytest.param(config, id=name, marks=() if config[5] > 1 else pytest.mark.slow)
               for config, name in zip(CONFIGS, IDS, strict=True)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("config", JAX_CONFIGS)
def test_jax_conv_general_dilated(config, dtype):
    pytest.importorskip("jax")
    import jax
    from jax import lax

    import twins.jax_backend  # noqa: F401  (enables float64, as the twin does)

    layer, x, upstream, want = engine_case(config, dtype)
    top, bottom, left, right = padding_amounts(layer.padding, x.shape[2:], layer.weight.shape[2:],
                                               layer.stride, layer.dilation)

    def forward(x_, w_, b_):
        z = lax.conv_general_dilated(x_, w_, (layer.stride,) * 2, ((top, bottom), (left, right)),
                                     rhs_dilation=(layer.dilation,) * 2,
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                     precision=lax.Precision.HIGHEST)
        return z + b_[None, :, None, None]

    z, pullback = jax.vjp(forward, x, layer.weight, layer.bias)
    dx, dw, db = pullback(upstream)
    assert_close({"Z": np.asarray(z), "dW": np.asarray(dw), "db": np.asarray(db), "dX": np.asarray(dx)},
                 want, dtype)


def test_a_flipped_kernel_fails_against_torch():
    """The check can fail: a convolution (kernel flipped), not the frameworks' cross-correlation."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    layer, x, upstream, want = engine_case(CONFIGS[1], "float64")
    flipped = torch.from_numpy(layer.weight[:, :, ::-1, ::-1].copy())
    top, bottom, left, right = padding_amounts("same", x.shape[2:], layer.weight.shape[2:], 2, 1)
    z = F.conv2d(F.pad(torch.from_numpy(x), (left, right, top, bottom)), flipped,
                 torch.from_numpy(layer.bias), stride=2)
    with pytest.raises(AssertionError, match="Z"):
        assert_close({"Z": z.numpy()}, {"Z": want["Z"]}, "float64")


POOLS = {"max-2": ("max", 2, None), "max-3-s2": ("max", 3, 2), "avg-2": ("avg", 2, None),
         "avg-3-s2": ("avg", 3, 2),
         # non-square windows both ways on the 9×8 input (strides are one integer in the spec)
         "max-2x3-s2": ("max", (2, 3), 2), "max-3x1-s1": ("max", (3, 1), 1), "avg-3x2-s1": ("avg", (3, 2), 1),
         "avg-1x3-s2": ("avg", (1, 3), 2)}


def pool_case(kind, pool, stride, dtype):
    from scratch.layers.pooling import AvgPool2D, MaxPool2D

    rng = np.random.default_rng(2)
    layer = (MaxPool2D if kind == "max" else AvgPool2D)(pool, stride)
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    z = layer.forward(x)
    upstream = rng.standard_normal(z.shape).astype(dtype)
    return x, upstream, {"Z": z, "dX": layer.backward(upstream, x)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", POOLS)
def test_torch_and_tensorflow_pooling(name, dtype):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("tensorflow")
    import torch.nn.functional as F

    kind, pool, stride = POOLS[name]
    x, upstream, want = pool_case(kind, pool, stride, dtype)
    stride = pool if stride is None else stride
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    zt = (F.max_pool2d if kind == "max" else F.avg_pool2d)(xt, pool, stride)
    zt.backward(torch.from_numpy(upstream))
    assert_close({"Z": zt.detach().numpy(), "dX": xt.grad.numpy()}, want, dtype)
    x_nhwc = tf.constant(x.transpose(0, 2, 3, 1))
    with tf.GradientTape() as tape:
        tape.watch(x_nhwc)
        z = (tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d)(x_nhwc, pool, stride, "VALID")
    dx = tape.gradient(z, x_nhwc, output_gradients=tf.constant(upstream.transpose(0, 2, 3, 1)))
    assert_close({"Z": z.numpy().transpose(0, 3, 1, 2), "dX": dx.numpy().transpose(0, 3, 1, 2)}, want, dtype)
