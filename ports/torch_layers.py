"""The spec layer of each step of a torch chain (:mod:`ports.torch_walk`): the inverse of
:data:`twins.torch_layers.LAYERS`.

* ``nn.Linear`` → dense (bias required: the spec's dense layer always has one);
* ``nn.Conv2d`` (groups 1, zero padding mode, square stride and dilation, bias) → conv2d; its
  padding, plus an ``nn.ZeroPad2d`` right before it, becomes the spec's: no padding is "valid",
  amounts that equal TensorFlow's "same" split at this input are "same" (torch's
  ``padding="same"`` at stride 1 is that split), others the explicit (top, bottom, left, right);
* ``nn.MaxPool2d`` / ``nn.AvgPool2d`` (no padding, ceil_mode off) → max_pool2d / avg_pool2d;
* ``nn.AdaptiveAvgPool2d(1)`` followed by a flatten → global_avg_pool2d;
* ``nn.Flatten()`` and the functional flattens → flatten (channels_first, or channels_last after
  ``permute(0, 2, 3, 1)``);
* ``nn.BatchNorm1d`` on features / ``nn.BatchNorm2d`` on maps (affine, tracking running
  statistics, a momentum) → batch_norm with ρ = 1 − momentum, ε = eps, unbiased running variance;
* ``nn.LayerNorm`` over the last dimension of (m, n), with γ and β → layer_norm;
* ``nn.PReLU`` (one slope or one per channel) → prelu (α₀ = its ``init``, slope α at 0);
* ``nn.Dropout(p)`` → dropout (p = 0: no layer).

Activation steps (``nn.ReLU``, ``nn.LeakyReLU``, ``nn.Sigmoid``, ``nn.Tanh``,
``nn.Softmax(dim=1)``, ``nn.LogSoftmax(dim=1)``, ``nn.Identity`` and their functional forms) are
read by :func:`activation_of_step`; the reading folds them into the layer before.

A reader raises :class:`Refused` with the reason a module cannot be read; ``shape`` is the shape of
one sample of its input, None where an earlier step could not be read (the checks that need it
are then skipped, so that every unsupported step is still listed).
"""

from __future__ import annotations

from torch import nn

from ports.torch_walk import GELU_FORMS, Op, Step
from scratch.layer_specs import (
    AvgPool2DSpec,
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    DropoutSpec,
    GlobalAvgPool2DSpec,
    LayerNormSpec,
    MaxPool2DSpec,
    PReLUSpec,
)
from scratch.layers.conv import padding_amounts


class Refused(Exception):
    """Why one step cannot be read into a spec layer."""


def _square(name: str, value) -> int:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if pair[0] != pair[1]:
        raise Refused(f"{name} {pair}: the spec takes one {name} for both axes")
    return int(pair[0])


def _inputs(found: int, wanted: tuple[int, ...] | None, what: str, shape) -> None:
    if shape is not None and (wanted is None or found != wanted[0]):
        raise Refused(f"{what} {found}, but its input is {shape}")


def dense(module: nn.Linear, shape) -> DenseSpec:
    if module.bias is None:
        raise Refused("bias=False: the spec's dense layer always has a bias")
    _inputs(module.in_features, shape if shape is not None and len(shape) == 1 else None, "in_features",
            shape)
    return DenseSpec(module.out_features, "identity")


def conv2d(module: nn.Conv2d, shape, pad: tuple[int, int, int, int] = (0, 0, 0, 0)) -> Conv2DSpec:
    """``pad``: an ``nn.ZeroPad2d``'s (left, right, top, bottom) right before the conv."""
    if module.groups != 1:
        raise Refused(f"groups={module.groups} (a grouped or depthwise convolution): the spec's conv2d "
                      "has groups=1")
    if module.padding_mode != "zeros":
        raise Refused(f"padding_mode={module.padding_mode!r}: the spec pads with zeros")
    if module.bias is None:
        raise Refused("bias=False: the spec's conv2d layer always has a bias")
    strides, dilation = _square("stride", module.stride), _square("dilation", module.dilation)
    kernel = tuple(module.kernel_size)
    _inputs(module.in_channels, shape if shape is not None and len(shape) == 3 else None, "in_channels",
            shape)
    if shape is None:
        return Conv2DSpec(module.out_channels, kernel, strides, "valid", dilation, "identity")
    if module.padding == "same":
        own = padding_amounts("same", shape[1:], kernel, 1, dilation)
    elif module.padding == "valid":
        own = (0, 0, 0, 0)
    else:
        own = (module.padding[0], module.padding[0], module.padding[1], module.padding[1])
    left, right, top, bottom = pad
    amounts = tuple(a + b for a, b in zip(own, (top, bottom, left, right), strict=True))
    padding = ("valid" if not any(amounts)
               else "same" if amounts == padding_amounts("same", shape[1:], kernel, strides, dilation)
               else amounts)
    return Conv2DSpec(module.out_channels, kernel, strides, padding, dilation, "identity")


def zero_pad(module: nn.ZeroPad2d) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) of an ``nn.ZeroPad2d`` (cropping refused)."""
    if any(amount < 0 for amount in module.padding):
        raise Refused(f"negative padding {module.padding} (a crop)")
    return tuple(module.padding)


def pool(module: nn.MaxPool2d | nn.AvgPool2d, shape) -> MaxPool2DSpec | AvgPool2DSpec:
    if any(_pair(module.padding)):
        raise Refused(f"padding={module.padding}: the spec's pools do not pad")
    if module.ceil_mode:
        raise Refused("ceil_mode=True: the spec's pools drop a partial window")
    if isinstance(module, nn.MaxPool2d) and (_pair(module.dilation) != (1, 1) or module.return_indices):
        raise Refused("dilation or return_indices: the spec's max pool has neither")
    if isinstance(module, nn.AvgPool2d) and module.divisor_override is not None:
        raise Refused("divisor_override: the spec's average pool divides by the window")
    spec_class = MaxPool2DSpec if isinstance(module, nn.MaxPool2d) else AvgPool2DSpec
    return spec_class(_pair(module.kernel_size), _square("stride", module.stride or module.kernel_size))


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def global_avg_pool(module: nn.AdaptiveAvgPool2d, following: Step | None) -> GlobalAvgPool2DSpec:
    """``nn.AdaptiveAvgPool2d(1)``; ``following``, the next step, must flatten its (C, 1, 1) maps."""
    if _pair(module.output_size) != (1, 1):
        raise Refused(f"output_size={module.output_size}: only AdaptiveAvgPool2d(1) (then a flatten) "
                      "reads, as global_avg_pool2d")
    if following is None or flatten_order(following) is None:
        raise Refused("AdaptiveAvgPool2d(1) must be followed by a flatten (the spec's global_avg_pool2d "
                      "gives (C,))")
    return GlobalAvgPool2DSpec()


def flatten_order(step: Step) -> str | None:
    """The order of a flatten step (``nn.Flatten()`` or a functional one), None for another step."""
    target = step.target
    if isinstance(target, Op):
        return target.value if target.kind == "flatten" else None
    if isinstance(target, nn.Flatten):
        if (target.start_dim, target.end_dim) != (1, -1):
            raise Refused(f"start_dim={target.start_dim}, end_dim={target.end_dim}: only Flatten() "
                          "(start_dim 1, end_dim −1) reads")
        return "channels_first"
    return None


def batch_norm(module: nn.BatchNorm1d | nn.BatchNorm2d, shape) -> BatchNormSpec:
    if not module.affine or not module.track_running_stats:
        raise Refused("affine=False or track_running_stats=False: the spec's batch_norm has γ, β and "
                      "running statistics")
    if module.momentum is None:
        raise Refused("momentum=None (a cumulative average): the spec's running statistics are "
                      "exponential averages")
    if shape is not None:
        wanted = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
        if type(module) is not wanted:
            raise Refused(f"its input is {shape}: the spec reads {wanted.__name__} there")
        _inputs(module.num_features, shape, "num_features", shape)
    return BatchNormSpec(decay=1.0 - module.momentum, epsilon=module.eps, running_variance="unbiased")


def layer_norm(module: nn.LayerNorm, shape) -> LayerNormSpec:
    if not module.elementwise_affine or module.bias is None:
        raise Refused("elementwise_affine=False or bias=False: the spec's layer_norm has γ and β")
    if len(module.normalized_shape) != 1 or (shape is not None and tuple(module.normalized_shape) != shape):
        raise Refused(f"normalized_shape {tuple(module.normalized_shape)} on input {shape}: the spec "
                      "normalizes the features (n,) of flat inputs")
    return LayerNormSpec(epsilon=module.eps)


def prelu(module: nn.PReLU, shape) -> PReLUSpec:
    if module.num_parameters == 1:
        return PReLUSpec("shared", float(module.init))
    _inputs(module.num_parameters, shape, "num_parameters", shape)
    return PReLUSpec("per_channel", float(module.init))


def dropout(module: nn.Dropout, shape) -> DropoutSpec | None:
    return DropoutSpec(module.p) if module.p else None


# module class → its reader (module, shape) → spec layer; pad, the global pool and activations are
# read by the walk over the chain (ports.torch_reading), which knows the neighbouring steps
LAYERS = {nn.Linear: dense, nn.Conv2d: conv2d, nn.MaxPool2d: pool, nn.AvgPool2d: pool,
          nn.BatchNorm1d: batch_norm, nn.BatchNorm2d: batch_norm, nn.LayerNorm: layer_norm,
          nn.PReLU: prelu, nn.Dropout: dropout}

_ACTIVATION_MODULES = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.Identity: "identity"}


def activation_of_step(step: Step) -> tuple[str, float | None] | None:
    """(activation name, leaky slope or None) of an activation step, None for any other step.
    ``nn.Softmax``/``nn.LogSoftmax`` must take dim=1 (the classes of (m, n))."""
    target = step.target
    if isinstance(target, Op):
        return target.value if target.kind == "activation" else None
    if type(target) in _ACTIVATION_MODULES:
        return (_ACTIVATION_MODULES[type(target)], None)
    if type(target) is nn.LeakyReLU:
        return ("leaky_relu", float(target.negative_slope))
    if type(target) is nn.GELU:
        return (GELU_FORMS[target.approximate], None)
    if type(target) in (nn.Softmax, nn.LogSoftmax):
        if target.dim != 1:
            raise Refused(f"dim={target.dim}: the spec's softmax runs over the classes, dim=1")
        return ("softmax" if type(target) is nn.Softmax else "log_softmax", None)
    return None
