"""Which JAX primitives produce each gradient, read from the jaxpr of the JAX twin's backward pass.

The twin's own forward pass and loss (its public ``forward`` / ``loss`` hooks, with zero taps
added to every Z_l and A_l) are differentiated by ``jax.vjp``, and the pullback is traced by
``jax.make_jaxpr`` with the cotangent seed dL/dL as an input. Its outputs are dL/dW_l, dL/db_l
(the parameters; a PReLU's dL/dα_l) and dL/dZ_l, dL/dA_l (the taps). The backward pass is every equation that
depends on the seed; the rest is the forward pass (and the residuals it keeps for the backward,
e.g. tanh's 1 − A²). For each named gradient, its *sink* is the equation that writes it, and each
of the sink's inputs gives one branch: the backward equations it depends on, short of another
named gradient, in the order they run — e.g. for a ReLU hidden layer

    dL/dA_l  ← dot_general                     (dZ_{l+1} · W_{l+1})
    dL/dZ_l  ← select_n                        (ReLU′: where(Z_l > 0, dA_l, 0))
    dL/dW_l  ← transpose ← dot_general         (dZ_lᵀ · A_{l−1}, then into W_l's layout)

A conv's dA_{l−1} and dW_l are both ``conv_general_dilated``, a max-pool's dA_{l−1}
``select_and_scatter_add``, BatchNorm's a nested ``standardize``. Where A_l is Z_l (no activation)
dL/dZ_l and dL/dA_l are one variable of the jaxpr, and both rows name its equations.

A nested call (``pjit``, ``custom_jvp_call``) is listed by its name. Attribution is exact (variable
identity in the jaxpr, no name matching).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Var


def _backward_jaxpr(backend, x, targets, masks):
    """(the closed jaxpr of the backward pass, the number of layers)."""
    params = list(backend.params)
    zs, activations = backend.forward(x, masks)
    taps = ([jnp.zeros_like(z) for z in zs], [jnp.zeros_like(a) for a in activations])

    def loss_of(params, taps):
        zs, activations = backend.forward(x, masks, params=params, taps=taps)
        return backend.loss(zs[-1], activations[-1], targets, params=params)

    def backward(params, taps, seed):
        _, pullback = jax.vjp(loss_of, params, taps)
        return pullback(seed)

    closed = jax.make_jaxpr(backward)(params, taps, np.ones((), backend.spec.dtype))
    return closed, len(zs)


def jaxpr_record(backend, x, targets, masks=None) -> str:
    """The jaxpr of the twin's backward pass (``make_jaxpr`` of its ``vjp`` pullback, the cotangent
    seed dL/dL its last input), as JAX prints it."""
    closed, _ = _backward_jaxpr(backend, x, targets, masks)
    return str(closed)


def producers(backend, x, targets, masks=None) -> dict[str, tuple[list[list[str]], str | None]]:
    """{"dZ2": ([["dot_general"]], "select_n"), …}: for each gradient of ``backend`` (a
    ``twins.jax_backend.JaxBackend``), the branches of jaxpr equations that lead to the
    equation producing it, and that equation's primitive."""
    closed, n = _backward_jaxpr(backend, x, targets, masks)
    jaxpr = closed.jaxpr
    spec = backend.spec                # params: every trainable tensor, the spec's declaration order
    names = ([name for names in spec.gradient_names for name in names]
             + [f"dZ{layer}" for layer in range(1, n + 1)] + [f"dA{layer}" for layer in range(1, n + 1)])
    seed = jaxpr.invars[-1]
    producer, backward_eqns = {}, set()
    tainted = {seed}
    for index, eqn in enumerate(jaxpr.eqns):
        for var in eqn.outvars:
            producer[var] = index
        if any(_is_var(v) and v in tainted for v in eqn.invars):
            backward_eqns.add(index)
            tainted.update(eqn.outvars)
    named = {}                         # var → its names (dZ_l and dA_l are one var where A_l = Z_l)
    for name, var in zip(names, jaxpr.outvars, strict=True):
        if _is_var(var) and producer.get(var) in backward_eqns:
            named.setdefault(var, []).append(name)
    out = {}
    for var, var_names in named.items():
        sink = jaxpr.eqns[producer[var]]
        stops = set(named) - {var}
        branches = [_branch(jaxpr, v, stops, producer, backward_eqns) for v in sink.invars]
        for name in var_names:
            out[name] = ([branch for branch in branches if branch], _label(sink))
    return out


def _is_var(v) -> bool:
    return isinstance(v, Var)


def _label(eqn) -> str:
    name = eqn.params.get("name")
    return f"{eqn.primitive.name}({name})" if name and eqn.primitive.name != "pjit" else (
        f"pjit({name})" if name else eqn.primitive.name)


def _branch(jaxpr, var, stops, producer, backward_eqns) -> list[str]:
    """The backward equations ``var`` depends on, short of ``stops`` and forward values, in order."""
    found, stack = set(), [var]
    while stack:
        v = stack.pop()
        if not _is_var(v) or v in stops or v not in producer or producer[v] not in backward_eqns:
            continue
        index = producer[v]
        if index not in found:
            found.add(index)
            stack.extend(jaxpr.eqns[index].invars)
    return [_label(jaxpr.eqns[index]) for index in sorted(found)]
