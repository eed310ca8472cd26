"""The spec's optimizers from optax's own pieces, for the JAX twin (``twins.jax_backend``):
the optax transformation of each (optimizer, convention), its hyperparameters as the jitted
update takes them, and where optax keeps each canonical state slot
(``judge.optimizer_state``). Formulas: ``scratch.optimizers``."""

from __future__ import annotations

import optax

from scratch.errors import BackendError
from scratch.optimizers import keras_scalar

# canonical slot (judge.optimizer_state) → (optax state field, sign), per (optimizer, convention)
_STATE_FIELDS = {
    "sgd": {},
    "momentum": {"v": ("trace", 1)},
    ("rmsprop", "torch"): {"s": ("nu", 1), "v": ("trace", 1)},
    ("rmsprop", "keras"): {"s": ("nu", 1), "v": ("trace", -1)},   # optax's trace is −Keras's v
    ("rmsprop", "optax"): {"s": ("nu", 1), "v": ("trace", 1)},
    "adam": {"m": ("mu", 1), "s": ("nu", 1)},
}


def hyperparameters(opt, dtype: str) -> dict[str, float]:
    """The optimizer's hyperparameters as Python floats. Passed to a jitted step they are weakly
    typed, so each operation rounds them to the parameters' dtype exactly as optax does with the
    literals of ``optax.adam(0.01)`` — and one executable serves every value (recompiling for
    each learning rate would dominate the suite's time). Keras rounds μ to float32 (see
    ``scratch.optimizers.keras_scalar``); its convention does so here."""
    hyper = {"learning_rate": opt.learning_rate}
    if opt.weight_decay:
        keras = opt.convention == "keras"
        hyper["weight_decay"] = float(keras_scalar(opt.weight_decay, dtype)) if keras else opt.weight_decay
    if opt.name == "momentum":
        keras = opt.convention == "keras"
        hyper["momentum"] = float(keras_scalar(opt.momentum, dtype)) if keras else opt.momentum
    elif opt.name == "rmsprop":
        hyper.update(rho=opt.rho, epsilon=opt.epsilon, **({"momentum": opt.momentum} if opt.momentum else {}))
    elif opt.name == "adam":
        hyper.update(beta1=opt.beta1, beta2=opt.beta2, epsilon=opt.epsilon)
    return hyper


def decay_form(opt) -> str | None:
    """How ``opt`` decays its weights: None, "coupled" or "decoupled" (a static part of the
    compiled update: the two chain optax's pieces differently)."""
    if not opt.weight_decay:
        return None
    return "decoupled" if opt.decoupled_decay else "coupled"


def optimizer_key(opt) -> tuple[str, str, str | None]:
    """(name, convention, decay form): what fixes the compiled update's code (the values travel in
    :func:`hyperparameters`)."""
    return opt.name, opt.convention, decay_form(opt)


def transform(name: str, convention: str, hyper: dict,
              decay: str | None = None) -> optax.GradientTransformation:
    """The spec's optimizer with its weight decay (:func:`decay_form`), from optax's own pieces:
    coupled, ``add_decayed_weights(λ)`` before the optimizer (g + λ·θ enters every buffer);
    decoupled, ``add_decayed_weights(−η·λ)`` after it (u − η·λ·θ, optax's ``adamw`` with the
    learning rate applied to the decay term alone)."""
    base = _optimizer_transform(name, convention, hyper)
    if decay == "coupled":
        return optax.chain(optax.add_decayed_weights(hyper["weight_decay"]), base)
    if decay == "decoupled":
        return optax.chain(base, optax.add_decayed_weights(-hyper["learning_rate"] * hyper["weight_decay"]))
    return base


def _optimizer_transform(name: str, convention: str, hyper: dict) -> optax.GradientTransformation:
    """The spec's optimizer from optax's own pieces (formulas: ``scratch.optimizers``).

    torch:  SGD, momentum = ``optax.sgd``; RMSprop = ``scale_by_rms(eps_in_sqrt=False)`` with the
            momentum ``trace`` before the learning rate (torch's buffer); Adam = ``optax.adam``
            (ε added to √ŝ, ``eps_root=0``).
    keras:  momentum = ``chain(scale(−η), trace(μ))`` (Keras's v ← μ·v − η·g); RMSprop =
            ``optax.rmsprop(eps_in_sqrt=True)``. Keras's Adam adds ε to √s, i.e. ε/√(1 − β₂ᵗ)
            to √ŝ — a step-dependent ε that neither ``eps`` nor ``eps_root`` can express: refused.
    optax:  ``optax.sgd``, ``optax.sgd(momentum=μ)``, ``optax.rmsprop``, ``optax.adam`` as they are.
    """
    lr, momentum = hyper["learning_rate"], hyper.get("momentum")
    if name == "sgd":
        return optax.sgd(lr)
    if name == "momentum":
        if convention == "keras":
            return optax.chain(optax.scale(-lr), optax.trace(decay=momentum))
        return optax.sgd(lr, momentum=momentum)
    if name == "rmsprop":
        if convention == "torch":
            rms = optax.scale_by_rms(decay=hyper["rho"], eps=hyper["epsilon"], eps_in_sqrt=False)
            return optax.chain(rms,
                               optax.identity() if momentum is None else optax.trace(decay=momentum),
                               optax.scale_by_learning_rate(lr))
        return optax.rmsprop(lr, decay=hyper["rho"], eps=hyper["epsilon"], eps_in_sqrt=True,
                             momentum=momentum)
    if convention == "keras":
        raise BackendError("jax backend: optax has no keras-convention 'adam' (Keras adds ε to √s, i.e. "
                           "ε/√(1 − β₂ᵗ) to √ŝ; optax.adam's eps and eps_root are constants); use "
                           "convention='torch' or 'optax' (plain SGD is the same in all)")
    return optax.adam(lr, b1=hyper["beta1"], b2=hyper["beta2"], eps=hyper["epsilon"])


def optimizer(opt, dtype: str) -> optax.GradientTransformation:
    """The optax optimizer of an ``OptimizerSpec`` (see :func:`transform`)."""
    return transform(opt.name, opt.convention, hyperparameters(opt, dtype), decay_form(opt))


def state_fields(opt) -> dict[str, tuple[str, int]]:
    """Canonical slot → (optax state field, sign) for ``opt`` (an ``OptimizerSpec``)."""
    return _STATE_FIELDS[opt.name if opt.name in _STATE_FIELDS else (opt.name, opt.convention)]
