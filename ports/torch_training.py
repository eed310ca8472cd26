"""A torch side's loss module and optimizer, read into the spec's loss, output activation and
:class:`scratch.spec.OptimizerSpec` (convention "torch").

The loss decides how the module's output relates to the spec's A_L (``returns``):

========================  =======================  ===========  ======================
loss                      the module ends in        spec         the module returns
========================  =======================  ===========  ======================
``CrossEntropyLoss``      logits                    cce/softmax  ``logits``
``CrossEntropyLoss``      ``Softmax``               cce/softmax  ``activation`` + Finding
``CrossEntropyLoss``,     ``LogSoftmax``            cce/softmax  ``log_softmax``
``NLLLoss``
``BCEWithLogitsLoss``     logits                    bce/sigmoid  ``logits``
``BCELoss``               ``Sigmoid``               bce/sigmoid  ``activation``
``MSELoss``               its activation g          mse/g        ``activation``
========================  =======================  ===========  ======================

A softmax output fed to ``CrossEntropyLoss`` (which applies its own log-softmax) is a *double
softmax*: the spec cannot express it, so the spec is read as if the module's softmax were absent
(A_L = softmax(Z_L) trained by CCE on Z_L) and a :class:`ports.reading.Finding` names the
layer; the real model still runs the user's module and loss as they are, so the two disagree on
the loss and gradients, which is what the doctor explains. ``CrossEntropyLoss`` on log-softmax
outputs is exactly ``NLLLoss`` on them (log_softmax(log_softmax(z)) = log_softmax(z)).

Without a loss the spec's default CCE stands where the output allows it (softmax, log-softmax, or
logits of at least two units, which the real model turns into probabilities); a sigmoid output
reads as BCE, and any other output as MSE on the output as it is.

torch's ``weight_decay`` adds λ·θ to the gradient of *every* parameter in its groups (biases, γ,
β, α): the spec's coupled weight decay, not its L2 (a loss penalty on the dense and conv2d kernels
only). ``AdamW`` (and ``Adam(decoupled_weight_decay=True)``) is its decoupled decay, θ ← θ·(1 − η·λ)
before the Adam step; AdamW's default λ is 0.01. Param groups with different settings (the common
"no decay on biases" recipe) are refused: the spec has one setting for every tensor.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ports.reading import Finding
from scratch.spec import OptimizerSpec


class LossRead(NamedTuple):
    loss: str
    output_activation: str
    returns: str                       # "logits", "activation" or "log_softmax"


def read_loss(loss: nn.Module | None, final: str, units: int, output_layer: int,
              problems: list[str], notes: list[str], findings: list[Finding]) -> LossRead | None:
    """The :class:`LossRead` of ``loss`` on a module whose last step applies ``final`` (identity,
    softmax, sigmoid, tanh or log_softmax) to the ``units`` outputs of numbered layer
    ``output_layer``; a problem appended (and None) where the pair cannot be read."""
    name = type(loss).__name__
    if loss is None:
        notes.append("no loss given: the reading holds a loss that fits the module's output (the spec's "
                     "default cce where it can), until the other side's replaces it")
        if final in ("softmax", "log_softmax") or (final == "identity" and units >= 2):
            if final == "identity":
                notes.append("the module returns logits: its output A_L is read as their softmax")
            return LossRead("cce", "softmax", "logits" if final == "identity" else
                            "activation" if final == "softmax" else "log_softmax")
        return LossRead("bce" if final == "sigmoid" else "mse", final, "activation")
    if not isinstance(loss, nn.Module) or type(loss) not in _LOSSES:
        problems.append(f"loss {name}: not one the spec reads (CrossEntropyLoss, NLLLoss, BCEWithLogitsLoss, "
                        "BCELoss, MSELoss)")
        return None
    options = [f"{option}={getattr(loss, option)!r}" for option, default in _DEFAULTS.items()
               if hasattr(loss, option) and not _same(getattr(loss, option), default)]
    if options:
        problems.append(f"loss {name}: {', '.join(options)}: the spec's losses are unweighted means over "
                        "the batch (reduction='mean', no weight, pos_weight, ignore_index or label "
                        "smoothing)")
        return None
    read = _LOSSES[type(loss)].get(final)
    if read is None:
        problems.append(f"loss {name} on a module that ends in {final}: "
                        + _MISFITS.get((type(loss), final), "the spec cannot express this pair"))
        return None
    if type(loss) is nn.CrossEntropyLoss and final == "softmax":
        findings.append(Finding("double_softmax", f"layer {output_layer}",
                                "the module ends in a softmax and CrossEntropyLoss applies its own "
                                "log-softmax to that output: the softmax is applied twice (read as if the "
                                "module's softmax were absent; the real model runs it as it is)"))
    if type(loss) is nn.BCELoss:
        notes.append("BCELoss clamps each log at −100 (a saturated sigmoid gives loss ≤ 100 per sample)")
    return read


def _same(value, default) -> bool:
    if default is None or isinstance(default, str):
        return value is None if default is None else value == default
    return value is not None and float(value) == default


_DEFAULTS = {"reduction": "mean", "weight": None, "pos_weight": None, "ignore_index": -100,
             "label_smoothing": 0.0}

_CCE = LossRead("cce", "softmax", "logits")
_LOSSES = {
    nn.CrossEntropyLoss: {"identity": _CCE, "softmax": _CCE._replace(returns="activation"),
                          "log_softmax": _CCE._replace(returns="log_softmax")},
    nn.NLLLoss: {"log_softmax": _CCE._replace(returns="log_softmax")},
    nn.BCEWithLogitsLoss: {"identity": LossRead("bce", "sigmoid", "logits")},
    nn.BCELoss: {"sigmoid": LossRead("bce", "sigmoid", "activation")},
    nn.MSELoss: {g: LossRead("mse", g, "activation") for g in ("identity", "sigmoid", "tanh", "softmax")},
}
_MISFITS = {
    (nn.BCEWithLogitsLoss, "sigmoid"): "BCEWithLogitsLoss applies its own sigmoid: the sigmoid is applied "
                                       "twice (remove the module's Sigmoid, or use BCELoss)",
    (nn.NLLLoss, "softmax"): "NLLLoss takes log-probabilities (end the module in LogSoftmax(dim=1))",
    (nn.NLLLoss, "identity"): "NLLLoss takes log-probabilities (end the module in LogSoftmax(dim=1))",
    (nn.BCELoss, "identity"): "BCELoss takes probabilities (end the module in Sigmoid, or use "
                              "BCEWithLogitsLoss)",
}


def read_optimizer(optimizer, parameters: list[nn.Parameter], problems: list[str],
                   notes: list[str]) -> OptimizerSpec | None:
    """The :class:`OptimizerSpec` of ``optimizer`` (a callable params → ``torch.optim.Optimizer``),
    built once on ``parameters`` to read its param groups; None (and a problem appended) where it
    cannot be read, the spec's default (and a note) where none is given."""
    if optimizer is None:
        notes.append(f"no optimizer given: the reading holds the spec's default ({OptimizerSpec()}) "
                     "until the other side's replaces it")
        return OptimizerSpec()
    if isinstance(optimizer, torch.optim.Optimizer):
        problems.append(f"optimizer: a {type(optimizer).__name__} already built; give the callable that "
                        "builds it on the parameters compare hands it, e.g. \"optimizer\": lambda params: "
                        f"torch.optim.{type(optimizer).__name__}(params, lr=…)")
        return None
    try:
        built = optimizer(parameters)
    except Exception as error:                       # the user's own callable
        problems.append(f"optimizer: building it on the module's parameters raised "
                        f"{type(error).__name__}: {error}")
        return None
    name = type(built).__name__
    if not isinstance(built, torch.optim.Optimizer):
        problems.append(f"optimizer: the callable returned a {name}, not a torch.optim.Optimizer")
        return None
    groups = [{key: value for key, value in group.items() if key != "params"} for group in built.param_groups]
    if any(_settings(group) != _settings(groups[0]) for group in groups):
        problems.append(f"optimizer {name}: {len(groups)} param groups with different settings: the spec "
                        "has one optimizer setting for every parameter")
        return None
    held = {id(parameter) for group in built.param_groups for parameter in group["params"]}
    if held != {id(parameter) for parameter in parameters}:
        problems.append(f"optimizer {name}: it does not update exactly the module's parameters")
        return None
    group = groups[0]
    refused = _refused(built, group)
    if refused:
        problems.append(f"optimizer {name}: {refused}")
        return None
    lr, decay = float(group["lr"]), float(group.get("weight_decay") or 0.0)
    decoupled = bool(group.get("decoupled_weight_decay"))          # AdamW's group holds True
    decayed = {"weight_decay": decay, "decoupled_decay": decoupled} if decay else {}
    if type(built) is torch.optim.SGD:
        momentum = float(group["momentum"])
        return OptimizerSpec("momentum" if momentum else "sgd", "torch", lr, momentum=momentum, **decayed)
    if type(built) is torch.optim.RMSprop:
        return OptimizerSpec("rmsprop", "torch", lr, rho=float(group["alpha"]), epsilon=float(group["eps"]),
                             momentum=float(group["momentum"]), **decayed)
    beta1, beta2 = (float(beta) for beta in group["betas"])
    return OptimizerSpec("adam", "torch", lr, beta1=beta1, beta2=beta2, epsilon=float(group["eps"]),
                         **decayed)


def _settings(group: dict) -> dict:
    return {key: (float(value) if isinstance(value, torch.Tensor) else value) for key, value in group.items()}


def _refused(built: torch.optim.Optimizer, group: dict) -> str | None:
    """Why an optimizer's settings cannot be read (None: they can)."""
    if type(built) not in (torch.optim.SGD, torch.optim.RMSprop, torch.optim.Adam, torch.optim.AdamW):
        return "not one the spec reads (SGD, RMSprop, Adam, AdamW)"
    if group.get("maximize"):
        return "maximize=True"
    options = {torch.optim.SGD: ("dampening", "nesterov"), torch.optim.RMSprop: ("centered",),
               torch.optim.Adam: ("amsgrad",), torch.optim.AdamW: ("amsgrad",)}[type(built)]
    used = [f"{option}={group[option]}" for option in options if group.get(option)]
    return f"{', '.join(used)}: the spec's {type(built).__name__} has no such option" if used else None
