"""What torch, Keras and JAX/optax do by default about the leaks of :mod:`reports.study.leaks`,
measured in the installed versions (each fact is a call made here, not a sentence copied from
their documentation), so the page states what the pinned versions do.

Three groups of rows, each {framework, what, measured, meaning}:

- ``optimizers``: one plain-SGD step (learning rate η) on a parameter 0 with gradient
  g = 1e20 moves it by exactly −η·g in ``torch.optim.SGD``, ``keras.optimizers.SGD`` and
  ``optax.sgd``: no clipping by default; Keras's ``clipnorm``/``clipvalue``/``global_clipnorm``
  read back None, torch's SGD takes no clipping argument (clipping is a separate call,
  ``torch.nn.utils.clip_grad_norm_``), optax clips only when ``optax.clip_by_global_norm`` is chained.
- ``losses``: binary cross-entropy at a confidently wrong sigmoid output, y = 1 and logit z ≪ 0
  (float32). From logits (what every twin uses: ``BCEWithLogitsLoss``, Keras ``from_logits=True``,
  ``optax.sigmoid_binary_cross_entropy``) the loss is −log σ(z) ≈ −z and dL/dz = σ(z) − 1 ≈ −1.
  From probabilities p = σ(z): torch's ``binary_cross_entropy`` clamps log p to ≥ −100 and, in its
  backward (ATen's ``binary_cross_entropy_backward``, ``EPSILON = 1e-12``), divides by
  max(p(1 − p), 1e-12), so dL/dz = −σ(z)/1e-12 once p(1 − p) < 1e-12 (z < −27.6): −4.25e-6 at z = −40;
  Keras clips p to [ε, 1 − ε] (ε = ``keras.config.epsilon()`` = 1e-7), so once σ(z) < ε
  (z < −16.1) the loss is stuck at −log ε = 16.118 and dL/dz = 0 — unless p came from Keras's own
  sigmoid, whose output carries its logits (``_keras_logits``), which the loss then uses.
- ``nan_checks``: torch's anomaly mode, ``jax_debug_nans`` and ``jax_debug_infs`` are off; Keras
  adds ``History`` and ``ProgbarLogger`` to ``fit``'s callbacks and not ``TerminateOnNaN`` (read
  from the source of ``keras.callbacks.CallbackList``).

Frameworks are imported inside the functions (call :func:`twins.hygiene.configure_frameworks`
first); a framework that is not installed gets no rows.
"""

from __future__ import annotations

import importlib.util
import inspect
import math

import numpy as np

LEARNING_RATE = 0.1
HUGE_GRADIENT = 1e20
LOGITS = (-5.0, -20.0, -40.0, -120.0)


def framework_defaults() -> dict:
    """{"optimizers": rows, "losses": rows, "nan_checks": rows} for the installed frameworks."""
    out = {"optimizers": [], "losses": [], "nan_checks": []}
    for module, measure in (("torch", _torch), ("tensorflow", _keras), ("jax", _jax)):
        if importlib.util.find_spec(module) is not None:
            for group, rows in measure().items():
                out[group] += rows
    return out


def _sgd_row(framework: str, call: str, moved: float, settings: str) -> dict:
    expected = -LEARNING_RATE * HUGE_GRADIENT
    unclipped = math.isclose(moved, expected, rel_tol=1e-6)
    return {"framework": framework, "what": f"{call}: one step, gradient {HUGE_GRADIENT:g}",
            "measured": f"moved {moved:.6g} (−η·g = {expected:.6g}); {settings}",
            "clipped": not unclipped,
            "meaning": "no clipping by default: an exploding gradient reaches the weights whole"}


def _loss_rows(framework: str, what: str, function) -> list[dict]:
    """One row per logit of :data:`LOGITS`: ``function(z)`` → (loss, dL/dz) at y = 1."""
    values = [function(z) for z in LOGITS]
    return [{"framework": framework, "what": what, "logits": list(LOGITS),
             "loss": [float(loss) for loss, _ in values], "gradient": [float(g) for _, g in values]}]


def _torch() -> dict:
    import torch

    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=LEARNING_RATE)
    param.grad = torch.full((1,), HUGE_GRADIENT, dtype=torch.float64)
    optimizer.step()
    clip_arguments = [name for name in inspect.signature(torch.optim.SGD).parameters if "clip" in name]
    optimizers = [_sgd_row("torch", f"torch.optim.SGD(lr={LEARNING_RATE})", float(param.detach()[0]),
                           f"clipping arguments in its signature: {clip_arguments or 'none'}")]

    def probabilities(z):
        logit = torch.tensor([z], dtype=torch.float32, requires_grad=True)
        loss = torch.nn.functional.binary_cross_entropy(torch.sigmoid(logit), torch.ones(1))
        loss.backward()
        return loss.item(), logit.grad.item()

    def logits(z):
        logit = torch.tensor([z], dtype=torch.float32, requires_grad=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.ones(1))
        loss.backward()
        return loss.item(), logit.grad.item()

    losses = (_loss_rows("torch", "BCELoss on sigmoid(z) (probabilities)", probabilities)
              + _loss_rows("torch", "BCEWithLogitsLoss on z (the torch twin's)", logits))
    checks = [{"framework": "torch", "what": "torch.is_anomaly_enabled()",
               "measured": str(torch.is_anomaly_enabled()),
               "meaning": "a NaN in the backward pass raises nothing unless anomaly mode is on"}]
    return {"optimizers": optimizers, "losses": losses, "nan_checks": checks}


def _keras() -> dict:
    import keras
    import tensorflow as tf
    from keras.src.callbacks.callback_list import CallbackList

    optimizer = keras.optimizers.SGD(learning_rate=LEARNING_RATE)
    variable = keras.Variable(np.zeros(1), dtype="float64")
    optimizer.apply_gradients([(tf.constant([HUGE_GRADIENT], tf.float64), variable)])
    settings = (f"clipnorm={optimizer.clipnorm}, clipvalue={optimizer.clipvalue}, "
                f"global_clipnorm={optimizer.global_clipnorm}")
    optimizers = [_sgd_row("keras", f"keras.optimizers.SGD(learning_rate={LEARNING_RATE})",
                           float(variable.numpy()[0]), settings)]

    def through(sigmoid, from_logits=False):
        def function(z):
            logit = tf.Variable([[z]], dtype=tf.float32)
            with tf.GradientTape() as tape:
                output = logit if from_logits else sigmoid(logit)
                loss = keras.losses.binary_crossentropy(tf.ones((1, 1)), output, from_logits=from_logits)[0]
            return float(loss), float(tape.gradient(loss, logit)[0, 0])
        return function

    losses = (_loss_rows("keras", f"binary_crossentropy on tf.sigmoid(z) (probabilities; ε = "
                                  f"{keras.config.epsilon():g})", through(tf.sigmoid))
              + _loss_rows("keras", "binary_crossentropy on keras.activations.sigmoid(z) (keeps its logits)",
                           through(keras.activations.sigmoid))
              + _loss_rows("keras", "binary_crossentropy(from_logits=True) on z (the Keras twin's)",
                           through(None, from_logits=True)))
    source = inspect.getsource(CallbackList)
    checks = [{"framework": "keras", "what": "fit's default callbacks (CallbackList source)",
               "measured": f"History: {'History()' in source}, ProgbarLogger: {'ProgbarLogger()' in source}, "
                           f"TerminateOnNaN: {'TerminateOnNaN' in source}",
               "meaning": "fit trains on through a NaN loss unless TerminateOnNaN is passed"}]
    return {"optimizers": optimizers, "losses": losses, "nan_checks": checks}


def _jax() -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    optimizer = optax.sgd(LEARNING_RATE)
    params = jnp.zeros(1)
    updates, _ = optimizer.update(jnp.full(1, HUGE_GRADIENT), optimizer.init(params), params)
    moved = float(optax.apply_updates(params, updates)[0])
    optimizers = [_sgd_row("jax", f"optax.sgd({LEARNING_RATE})", moved,
                           "clipping only when chained, e.g. optax.chain(optax.clip_by_global_norm(c), …)")]

    def loss(z):
        return optax.losses.sigmoid_binary_cross_entropy(z, jnp.ones(1, jnp.float32)).sum()

    def logits(z):
        z = jnp.array([z], jnp.float32)
        return float(loss(z)), float(jax.grad(loss)(z)[0])

    losses = _loss_rows("jax", "optax.losses.sigmoid_binary_cross_entropy on z (the JAX twin's)", logits)
    checks = [{"framework": "jax", "what": "jax_debug_nans, jax_debug_infs",
               "measured": f"{jax.config.jax_debug_nans}, {jax.config.jax_debug_infs}",
               "meaning": "a jitted step returns NaN or inf without raising unless these flags are set"}]
    return {"optimizers": optimizers, "losses": losses, "nan_checks": checks}
