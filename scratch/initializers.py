"""Weight initializers, one per seed write-up and framework default.

Each maps (generator, fan_in, fan_out, shape) to W of ``shape`` and b (shape[0],), drawn in
float64 from the given seeded ``numpy.random.Generator`` (W first, then b) and cast once,
explicitly, to the spec's dtype, so a float32 model starts from the float64 model's values
rounded to float32. A dense layer's W is (fan_out, fan_in); a conv2d kernel (O, C, k_h, k_w) has
fan_in = C·k_h·k_w and fan_out = O·k_h·k_w (as torch's and Keras's initializers count them).
BatchNorm and LayerNorm start at γ = 1, β = 0 (every framework's default) and draw nothing.

The sequence layers carry their framework's initializer as a field of their own (the spec's
``init`` does not reach them), :func:`sequence_initial`, drawn from the same generator in
declaration order:

========================= ================================ ===================================
layer ``init``            kernels                          biases
========================= ================================ ===================================
recurrent ``torch``       U(±1/√H), W_ih and W_hh          U(±1/√H), each
recurrent ``keras``       W_ih U(±√(6/(n + G·H))) (Glorot); 0; the LSTM's forget block 1
                          W_hh orthogonal columns           (``unit_forget_bias``, on b_ih only)
embedding ``torch``       E ~ N(0, 1)
embedding ``keras``       E ~ U(−0.05, 0.05)
========================= ================================ ===================================

Keras's orthogonal W_hh: the Q of the QR decomposition of a (G·H, H) standard normal matrix,
each column's sign set by R's diagonal (Keras's recurrent kernel (H, G·H) is its transpose, gate
blocks permuted: rows orthonormal there).

=============== ======================================= ===================
name            W                                       b
=============== ======================================= ===================
uniform_half    U(−0.5, 0.5)                            U(−0.5, 0.5)
small_normal    0.01·N(0, 1)                            0
he_normal       N(0, 2/fan_in)  (plain, not truncated)  0
lecun_normal    N(0, 1/fan_in)                          N(0, 1)
glorot_uniform  U(±√(6/(fan_in + fan_out)))  (Keras)    0
torch_default   U(±1/√fan_in)  (torch.nn.Linear)        U(±1/√fan_in)
=============== ======================================= ===================
"""

from __future__ import annotations

import numpy as np

from scratch.errors import SpecError


def uniform_half(rng, fan_in, fan_out, shape):
    return rng.uniform(-0.5, 0.5, shape), rng.uniform(-0.5, 0.5, shape[0])


def small_normal(rng, fan_in, fan_out, shape):
    return 0.01 * rng.standard_normal(shape), np.zeros(shape[0])


def he_normal(rng, fan_in, fan_out, shape):
    return np.sqrt(2.0 / fan_in) * rng.standard_normal(shape), np.zeros(shape[0])


def lecun_normal(rng, fan_in, fan_out, shape):
    return np.sqrt(1.0 / fan_in) * rng.standard_normal(shape), rng.standard_normal(shape[0])


def glorot_uniform(rng, fan_in, fan_out, shape):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape), np.zeros(shape[0])


def torch_default(rng, fan_in, fan_out, shape):
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape), rng.uniform(-bound, bound, shape[0])


INITIALIZERS = {fn.__name__: fn for fn in
                (uniform_half, small_normal, he_normal, lecun_normal, glorot_uniform, torch_default)}


def _initializer(name: str):
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise SpecError(f"unknown initializer {name!r}; expected one of {', '.join(INITIALIZERS)}") from None


def initialize(name: str, layer_sizes, seed: int, dtype) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights [W_1..W_L] (each (n_l, n_{l−1})) and biases [b_1..b_L] (each (n_l,)) of an MLP.

    One generator, ``numpy.random.default_rng(seed)``, is used for all layers in order.
    """
    draw = _initializer(name)
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True):
        w, b = draw(rng, fan_in, fan_out, (fan_out, fan_in))
        weights.append(w.astype(dtype))
        biases.append(b.astype(dtype))
    return weights, biases


def initialize_layers(spec, dtype) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """W_l and b_l of every layer of ``spec`` with parameters (``spec.parameter_layers``), in
    order, from one generator ``numpy.random.default_rng(spec.seed)``; for an MLP exactly
    :func:`initialize`'s values. Each tensor starts as its declaration says (``TensorSpec.init``):
    the ``scheme`` pair is drawn together, ``zeros`` and ``ones`` draw nothing."""
    tensors = initial_tensors(spec)
    weights, biases = [], []
    for layer, names in zip(spec.parameter_layers, spec.parameter_names, strict=True):
        first, second = (tensors[layer][name] for name in names)
        weights.append(first.astype(dtype))
        biases.append(second.astype(dtype))
    return weights, biases


def initial_tensors(spec) -> dict[int, dict[str, np.ndarray]]:
    """{l: {name: float64 start value}} of every trainable tensor of every layer with parameters,
    in declaration order, from one generator ``numpy.random.default_rng(spec.seed)``."""
    draw = _initializer(spec.init)
    rng = np.random.default_rng(spec.seed)
    out = {}
    for layer in spec.parameter_layers:
        layer_spec = spec.numbered_layers[layer - 1]
        shape_in = spec.layer_shapes[layer - 1]
        values, drawn = {}, None
        for tensor in layer_spec.tensors:
            if not tensor.trainable:
                continue
            shape = tensor.shape(layer_spec, shape_in)
            if tensor.init == "scheme":
                receptive_field = int(np.prod(shape[2:], dtype=np.int64))     # k_h·k_w, 1 for dense
                drawn = draw(rng, shape[1] * receptive_field, shape[0] * receptive_field, shape)
                values[tensor.name] = drawn[0]
            elif tensor.init == "scheme_bias":
                values[tensor.name] = drawn[1]
            elif tensor.init in ("zeros", "ones"):
                values[tensor.name] = (np.zeros if tensor.init == "zeros" else np.ones)(shape)
            elif tensor.init in ("recurrent", "embedding"):
                values[tensor.name] = sequence_initial(layer_spec, tensor.name, shape, rng)
            elif tensor.init.startswith("field:"):
                values[tensor.name] = np.full(shape, float(getattr(layer_spec, tensor.init[6:])))
            else:
                raise SpecError(f"layer {layer}: tensor {tensor.name} has unknown init rule {tensor.init!r}")
        out[layer] = values
    return out


def sequence_initial(layer_spec, name: str, shape: tuple[int, ...], rng) -> np.ndarray:
    """The float64 start of tensor ``name`` of an embedding or recurrent layer, as its ``init``
    field says (the module's table)."""
    if layer_spec.kind == "embedding":
        return rng.standard_normal(shape) if layer_spec.init == "torch" else rng.uniform(-0.05, 0.05, shape)
    units = layer_spec.units
    if layer_spec.init == "torch":
        bound = 1.0 / np.sqrt(units)
        return rng.uniform(-bound, bound, shape)
    if name == "weight_ih":
        limit = np.sqrt(6.0 / (shape[0] + shape[1]))
        return rng.uniform(-limit, limit, shape)
    if name == "weight_hh":
        q, r = np.linalg.qr(rng.standard_normal(shape))
        return q * np.sign(np.diag(r))
    bias = np.zeros(shape)
    if layer_spec.kind == "lstm" and name in ("bias", "bias_ih"):       # unit_forget_bias: f's block
        bias[units:2 * units] = 1.0
    return bias


def initialize_tensors(spec, dtype) -> list[dict[str, np.ndarray]]:
    """{name: start value} of every layer with parameters, in ``spec.parameter_layers`` order,
    cast once to ``dtype`` (:func:`initial_tensors`)."""
    return [{name: value.astype(dtype) for name, value in layer.items()}
            for layer in initial_tensors(spec).values()]
