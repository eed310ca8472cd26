"""Read a user's ``nn.Module`` (with its loss and optimizer, when given) into a
:class:`ports.reading.Reading` and its :class:`ports.torch_model.TorchModel`.

The module is walked in execution order (:mod:`ports.torch_walk`), each step read into a spec
layer (:mod:`ports.torch_layers`); an activation step folds into the ``activation`` field of the
layer before it (``nn.LeakyReLU``'s slope into the spec's model-wide ``leaky_relu_slope``, which
must then be the same everywhere; a ReLU after a dropout commutes with it and folds into the layer
before the dropout). The loss module and optimizer are read by :mod:`ports.torch_training`. The
dtype is the parameters' (float32 or float64). The reading does not infer initializers: the
spec's default ``init`` stands, and with the module's own tensors it does not matter.

Everything that cannot be read — each unsupported module or op by step and name, each option the
spec cannot express, the loss, the optimizer — is collected and raised as one
:class:`ports.reading.PortError`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import torch
from torch import nn

from ports.reading import Finding, PortError, Reading
from ports.torch_layers import (
    LAYERS,
    Refused,
    activation_of_step,
    conv2d,
    flatten_order,
    global_avg_pool,
    zero_pad,
)
from ports.torch_model import TorchModel
from ports.torch_training import read_loss, read_optimizer
from ports.torch_walk import Step, walk
from scratch.errors import SpecError
from scratch.layer_specs import DropoutSpec, FlattenSpec, GlobalAvgPool2DSpec
from scratch.spec import ModelSpec

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def read_torch(module: nn.Module, *, inputs=None, loss: nn.Module | None = None, optimizer=None,
               weights_given: bool, source: str) -> tuple[Reading, TorchModel]:
    """The :class:`Reading` of ``module`` and the :class:`TorchModel` that runs it.

    ``inputs``: the shape of one sample, n, (n,) or (C, H, W) (None: ``in_features`` of a first
    ``nn.Linear``); ``loss``: a torch loss module or None; ``optimizer``: a callable
    params → ``torch.optim.Optimizer`` or None; ``weights_given``: whether the module's tensors are
    the side's own (loaded or trained), listed in ``given``; ``source`` names the side in messages."""
    if not isinstance(module, nn.Module):
        raise PortError(f"{source}: expected a torch nn.Module, got {type(module).__name__}")
    problems: list[str] = []
    notes: list[str] = ["the reading does not infer initializers: the spec's default init stands"]
    findings: list[Finding] = []
    parameters = list(module.parameters())
    dtype = _dtype(parameters, source)
    problems += [f"parameter `{name}` is frozen (requires_grad=False): the spec trains every tensor"
                 for name, parameter in module.named_parameters() if not parameter.requires_grad]
    steps = walk(module)
    shape = _input_shape(inputs, steps, problems, source)
    layers, sources, final, slopes = _read_chain(steps, shape, problems)
    if len(slopes) > 1:
        problems.append(f"LeakyReLU slopes {sorted(slopes)}: the spec has one leaky_relu_slope for the model")
    numbered = [layer for layer in layers if not isinstance(layer, DropoutSpec)]
    read = None
    if numbered and hasattr(numbered[-1], "units"):
        read = read_loss(loss, final, numbered[-1].units, len(numbered), problems, notes, findings)
    elif not problems:
        problems.append("the module must end in nn.Linear (the spec's dense output layer)")
    optimizer_spec = read_optimizer(optimizer, parameters, problems, notes)
    if problems:
        raise PortError(f"{source}: cannot be read into the spec: " + "; ".join(problems))
    layers[-1] = dataclasses.replace(layers[-1], activation=read.output_activation)
    try:
        spec = ModelSpec(inputs=shape, layers=tuple(layers), loss=read.loss, optimizer=optimizer_spec,
                         dtype=dtype, **({"leaky_relu_slope": slopes.pop()} if slopes else {}))
    except SpecError as error:
        raise PortError(f"{source}: reads as {' → '.join(layer.describe() for layer in layers)}, "
                        f"which the spec refuses: {error}") from None
    numbered_sources = [held for layer, held in zip(layers, sources, strict=True)
                        if not isinstance(layer, DropoutSpec)]
    held = [_held(spec, number, numbered_sources[number - 1], source) for number in spec.parameter_layers]
    norms = [numbered_sources[number - 1] for number in spec.statistics_layers]
    model = TorchModel(module, spec, held, norms, read.returns, loss, optimizer)
    given = {name for name, held in (("weights", weights_given), ("loss", loss is not None),
                                     ("optimizer", optimizer is not None)) if held}
    reading = Reading("torch", source, spec, model.tensors(), model.statistics(), tuple(notes),
                      tuple(findings), frozenset(given))
    return reading, model


def _dtype(parameters: list[nn.Parameter], source: str) -> str:
    found = {parameter.dtype for parameter in parameters}
    if len(found) != 1 or not found <= set(_DTYPES):
        raise PortError(f"{source}: parameters in {sorted(map(str, found)) or 'no dtype'}: the spec reads "
                        "a module whose parameters are all float32 or all float64")
    return _DTYPES[found.pop()]


def _input_shape(inputs, steps: list[Step], problems: list[str], source: str) -> tuple[int, ...] | None:
    """The shape of one sample: ``inputs``, else (in_features,) of a first ``nn.Linear``."""
    if inputs is not None:
        shape = (inputs,) if isinstance(inputs, numbers.Integral) else tuple(inputs)
        if len(shape) not in (1, 3) or not all(isinstance(size, numbers.Integral) and size >= 1
                                               for size in shape):
            raise PortError(f"{source}: input shape {inputs!r}: expected (n,) or (C, H, W) of positive "
                            "integers")
        return tuple(int(size) for size in shape)
    if steps and isinstance(steps[0].target, nn.Linear):
        return (steps[0].target.in_features,)
    problems.append("the shape of one input sample is unknown (the module does not start with nn.Linear): "
                    "give --input-shape, (n,) or (C, H, W), or let the other side give it")
    return None


def _read_chain(steps: list[Step], shape, problems: list[str]):
    """(spec layers, the module holding each one's tensors, the activation the last step applies,
    the LeakyReLU slopes seen); each step that cannot be read appends a problem and makes the
    shape unknown from there on (so later steps are still checked, shape aside)."""
    layers, sources, slopes = [], [], set()
    final, pad, index = "identity", None, 0
    while index < len(steps):
        step = steps[index]
        index += 1
        target = step.target
        try:
            if pad is not None and type(target) is not nn.Conv2d:
                pad = None
                raise Refused("an nn.ZeroPad2d must come right before an nn.Conv2d")
            activation = activation_of_step(step)
            if activation is not None:
                final = _fold(activation, layers, slopes, last=index == len(steps)) or final
                continue
            if type(target) is nn.ZeroPad2d:
                pad = zero_pad(target)
                continue
            if type(target) is nn.Conv2d:
                layer, pad = conv2d(target, shape, pad or (0, 0, 0, 0)), None
            elif type(target) is nn.AdaptiveAvgPool2d:
                layer = global_avg_pool(target, steps[index] if index < len(steps) else None)
                index += 1
            elif getattr(target, "kind", None) == "global_avg_pool":     # x.mean(dim=(2, 3))
                layer = GlobalAvgPool2DSpec()
            elif flatten_order(step) is not None:
                layer = FlattenSpec(flatten_order(step))
            elif type(target) in LAYERS:
                layer = LAYERS[type(target)](target, shape)
            else:
                raise Refused(target.value if hasattr(target, "kind") else
                              f"no spec layer for {type(target).__name__}")
            if layer is None:                             # nn.Dropout(0): no layer
                continue
            if shape is not None and not isinstance(layer, DropoutSpec):
                shape = layer.output_shape(shape)
        except (Refused, SpecError) as error:
            problems.append(f"{step.describe()}: {error}")
            shape = None
            continue
        layers.append(layer)
        sources.append(target if isinstance(target, nn.Module) else None)
        final = "identity"
    return layers, sources, final, slopes


def _fold(activation: tuple[str, float | None], layers: list, slopes: set, last: bool) -> str | None:
    """Put ``activation`` into the activation field of the layer before it (in ``layers``);
    the name the module's output now ends in, None for an identity."""
    name, slope = activation
    if name == "identity":
        return None
    position = len(layers) - 1
    if layers and isinstance(layers[-1], DropoutSpec):
        if name not in ("relu", "leaky_relu"):
            raise Refused(f"a {name} after a dropout (which it does not commute with): put it before "
                          "the dropout")
        position -= 1
    if position < 0:
        raise Refused(f"a {name} before any layer")
    layer = layers[position]
    if not hasattr(layer, "activation"):
        raise Refused(f"a {name} after a {layer.kind} layer, which has no activation field (the spec "
                      "applies activations on dense, conv2d, batch_norm and layer_norm layers)")
    if layer.activation != "identity":
        raise Refused(f"a {name} right after a {layer.activation}: the spec has one activation per layer")
    if name == "log_softmax":
        if not last:
            raise Refused("LogSoftmax reads only as the module's last step (fed to NLLLoss or "
                          "CrossEntropyLoss)")
        return name
    if slope is not None:
        slopes.add(slope)
    layers[position] = dataclasses.replace(layer, activation=name)
    return name


def _held(spec: ModelSpec, number: int, module: nn.Module, source: str) -> dict:
    """{declared name: (the module's ``nn.Parameter``, canonical shape)} of numbered layer
    ``number``: each trainable tensor is the module's attribute of its stored name (torch's)."""
    layer, shape = spec.numbered_layers[number - 1], spec.layer_shapes[number - 1]
    held = {}
    for tensor, canonical in zip([t for t in layer.tensors if t.trainable], layer.parameter_shapes(shape),
                                 strict=True):
        parameter = getattr(module, tensor.stored)
        if parameter.numel() != math.prod(canonical):
            raise PortError(f"{source}: layer {number} ({layer.kind}) {tensor.stored} has shape "
                            f"{tuple(parameter.shape)}, the spec's {tensor.name} is {canonical}")
        held[tensor.name] = (parameter, canonical)
    return held
