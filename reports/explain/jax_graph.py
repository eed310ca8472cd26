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


def jaxpr_record(backend, x, targets, masks=None) -> list[str]:
    """The backward equations of the twin's pullback jaxpr (``make_jaxpr`` of its ``vjp``, the
    cotangent seed dL/dL its last input), in the order they run, one line each:
    ``%12:f64[4,4] = dot_general %3 %11`` — every variable numbered in order of first appearance,
    so a forward value the backward reads keeps its forward number — with "→ dW2" where the
    equation writes a named gradient."""
    jaxpr, producer, backward_eqns, named = _named_backward(backend, x, targets, masks)
    numbers: dict = {}

    def var(v) -> str:
        if not _is_var(v):
            return str(v)
        number = numbers.setdefault(v, len(numbers))
        return f"%{number}"

    for v in jaxpr.invars:
        var(v)
    lines = []
    for index, eqn in enumerate(jaxpr.eqns):
        outs = " ".join(f"{var(v)}:{v.aval.str_short()}" for v in eqn.outvars)
        ins = " ".join(var(v) for v in eqn.invars)
        if index not in backward_eqns:
            continue
        writes = [name for v in eqn.outvars for name in named.get(v, [])]
        lines.append(f"{outs} = {_label(eqn)} {ins}" + (f"  → {', '.join(writes)}" if writes else ""))
    return lines


def producers(backend, x, targets, masks=None) -> dict[str, tuple[list[list[str]], str | None]]:
    """{"dZ2": ([["dot_general"]], "select_n"), …}: for each gradient of ``backend`` (a
    ``twins.jax_backend.JaxBackend``), the branches of jaxpr equations that lead to the
    equation producing it, and that equation's primitive."""
    jaxpr, producer, backward_eqns, named = _named_backward(backend, x, targets, masks)
    out = {}
    for var, var_names in named.items():
        sink = jaxpr.eqns[producer[var]]
        stops = set(named) - {var}
        branches = [_branch(jaxpr, v, stops, producer, backward_eqns) for v in sink.invars]
        for name in var_names:
            out[name] = ([branch for branch in branches if branch], _label(sink))
    return out


def forward_eqns(backend, x, targets=None, masks=None) -> dict[str, str]:
    """{"Z2": "dot_general → add", "A2": "max", …}: for each forward value Z_l, A_l of the twin's
    forward pass (``make_jaxpr`` of its ``forward``, without taps), the equations that compute it
    from the previous named values and the parameters, in the order they run. Where A_l is Z_l
    (one variable), A_l's row names Z_l."""
    params = list(backend.params)
    closed = jax.make_jaxpr(lambda params: backend.forward(x, masks, params=params))(params)
    jaxpr = closed.jaxpr
    n = len(jaxpr.outvars) // 2
    names = [f"Z{layer}" for layer in range(1, n + 1)] + [f"A{layer}" for layer in range(1, n + 1)]
    producer = {var: index for index, eqn in enumerate(jaxpr.eqns) for var in eqn.outvars}
    named = {}                         # var → the first name it has (A_l is Z_l's var without activation)
    for name, var in zip(names, jaxpr.outvars, strict=True):
        if _is_var(var):
            named.setdefault(var, name)
    out = {}
    for name, var in zip(names, jaxpr.outvars, strict=True):
        if not _is_var(var) or named[var] != name:
            out[name] = f"(= {named[var]})" if _is_var(var) else "—"
            continue
        stops = set(named) - {var}
        found, stack = set(), [var]
        while stack:
            v = stack.pop()
            if not _is_var(v) or v in stops or v not in producer or producer[v] in found:
                continue
            found.add(producer[v])
            stack.extend(jaxpr.eqns[producer[v]].invars)
        out[name] = " → ".join(_label(jaxpr.eqns[index]) for index in sorted(found)) or "—"
    return out


def _named_backward(backend, x, targets, masks):
    """(the pullback's jaxpr, {var: the index of the equation that writes it}, the indices of the
    backward equations (those that depend on the seed), {var: its gradient names})."""
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
    return jaxpr, producer, backward_eqns, named


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
