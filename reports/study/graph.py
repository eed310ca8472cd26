"""The annotated computational graph of one training step (:class:`reports.study.run.StudyRun`):
every node shows its op, shape, a summary of its forward value and of its gradient from the run's
own arrays; every backward edge its local rule; a value that feeds two consumers the sum of its
gradients.

A node is a *value* (micrograd's ``Value``): a leaf (the input X, the targets Y, a dropout mask
D_l, a parameter W_l, b_l, …) or the result of one op. A dense layer l is four ops,

    A_{l−1}, W_l ─matmul─▶ A_{l−1}·W_lᵀ ─add bias (b_l)─▶ Z_l ─g_l─▶ H_l ─dropout (D_l)─▶ A_l

(a convolution the same with ``conv2d`` for ``matmul``; g_l and dropout only where the layer has
them, so A_l = H_l = Z_l may be one node), and its backward edges carry the local rules

    add          passes the gradient on: d(A_{l−1}·W_lᵀ) = dZ_l, db_l = Σ_rows dZ_l
    matmul       swaps: dA_{l−1} = dZ_l·W_l, dW_l = dZ_lᵀ·A_{l−1}
    relu         routes where Z_l > 0: dZ_l = dH_l ⊙ [Z_l > 0]
    dropout      routes through the mask: dH_l = dA_l ⊙ D_l
    max-pool     routes each window's gradient to its (first) maximum
    reused value gradients summed: W_l feeds the matmul and the L2 term, dW_l = dZ_lᵀ·A_{l−1} + λW_l

The loss is fused where the engine fuses it (softmax + CE, sigmoid + BCE: dZ_L = (A_L − Y)/m
straight from the loss, so A_L sits off the gradient path); with L2 the loss node is the sum of
the data loss and (λ/2)·Σ‖W_l‖². The value of the matmul node is Z_l − b_l (the engine adds the
bias in place and keeps no separate array); every other value and gradient is an array the engine
computed in the run (``run.named``, ``run.forward``, ``run.gradients``), except dH_l before a
dropout, which is the engine's own ``Dropout.backward`` of dA_l.

A dense stack is drawn at full detail; a stack with any other kind of layer is *collapsed*: one
node per numbered layer (its output A_l, with dA_l and dZ_l), and per layer its own detailed
sub-graph (``layers``). The layout is grandalf's layered (Sugiyama) layout: each backward rule is
a box of its own on its edge, so that no rule overlaps a node.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from grandalf.graphs import Edge, Graph, Vertex
from grandalf.layouts import SugiyamaLayout

from reports.render.blocks import Details, Svg
from reports.study import svg
from reports.study.run import StudyRun
from scratch.layer_specs import activation_of, describe_layer
from scratch.tensor_specs import gradient_name

REUSED = "reused value: gradients summed"
X_SPACE = 18           # between boxes in a layer of the layout
Y_SPACE = 22           # between layers
DISPLAY = {"gamma": "γ", "beta": "β", "alpha": "α", "weight_ih": "W_ih", "weight_hh": "W_hh",
           "bias_ih": "b_ih", "bias_hh": "b_hh"}


def sig3(value) -> float:
    """``value`` rounded to 3 significant digits."""
    return float(f"{float(value):.3g}")


def summary(array) -> dict:
    """{mean, std, min, max} of ``array``, each to 3 significant digits."""
    values = np.asarray(array, dtype=np.float64)
    return {"mean": sig3(values.mean()), "std": sig3(values.std()), "min": sig3(values.min()),
            "max": sig3(values.max())}


@dataclass(frozen=True)
class Names:
    """The names of layer l's quantities, as ``run.named`` spells them (``X`` for A_0)."""

    layer: int

    @property
    def prev(self) -> str:
        return "X" if self.layer == 1 else f"A{self.layer - 1}"

    @property
    def d_prev(self) -> str:
        return f"dA{self.layer - 1}"

    @property
    def z(self) -> str:
        return f"Z{self.layer}"

    @property
    def dz(self) -> str:
        return f"dZ{self.layer}"


# Each kind's backward rules: (the op's label, the rule for dA_{l−1}, the rule for each trainable
# tensor by its name); ``params`` maps a tensor's name to (display name, gradient name).
Rules = Callable[[Names, dict, object], tuple[str, str, dict[str, str]]]


def _dense(q: Names, params: dict, layer) -> tuple[str, str, dict[str, str]]:
    (w, dw), (_, db) = params["W"], params["b"]
    return ("matmul", f"matmul (swap): {q.d_prev} = {q.dz}·{w}",
            {"W": f"matmul (swap): {dw} = {q.dz}ᵀ·{q.prev}", "b": f"add (broadcast): {db} = Σ_rows {q.dz}"})


def _conv(q: Names, params: dict, layer) -> tuple[str, str, dict[str, str]]:
    (w, dw), (_, db) = params["W"], params["b"]
    return ("conv2d", f"conv (swap, per patch): {q.d_prev} = col2im({w}ᵀ·{q.dz})",
            {"W": f"conv (swap): {dw} = {q.dz}·Pᵀ, P = im2col({q.prev})",
             "b": f"add (broadcast): {db} = Σ {q.dz} over rows and pixels"})


def _max_pool(q, params, layer):
    return ("max_pool", f"max-pool: routes to the max: {q.d_prev} = {q.dz} at each window's max "
                        "(the first on a tie), 0 elsewhere", {})


def _avg_pool(q, params, layer):
    size = layer.pool_size[0] * layer.pool_size[1]
    return ("avg_pool", f"avg-pool: spreads: {q.d_prev} = {q.dz}/{size} on every cell of its window", {})


def _global_avg(q, params, layer):
    return ("global_avg_pool", f"global avg: {q.d_prev} = {q.dz}/(H·W) at every pixel", {})


def _flatten(q, params, layer):
    return ("flatten", f"flatten: {q.d_prev} = {q.dz} reshaped back to (C, H, W)", {})


def _batch_norm(q, params, layer):
    (g, dg), (_, dbeta) = params["gamma"], params["beta"]
    return ("batch_norm", f"batch norm: {q.d_prev} = ({g}/σ)·({q.dz} − mean {q.dz} − X̂·mean({q.dz}⊙X̂))",
            {"gamma": f"multiply: {dg} = Σ {q.dz}⊙X̂", "beta": f"add (broadcast): {dbeta} = Σ {q.dz}"})


def _layer_norm(q, params, layer):
    (g, dg), (_, dbeta) = params["gamma"], params["beta"]
    return ("layer_norm", f"layer norm, per row: {q.d_prev} = (1/σ)·(G − mean G − X̂·mean(G⊙X̂)), "
                          f"G = {q.dz}⊙{g}",
            {"gamma": f"multiply: {dg} = Σ_rows {q.dz}⊙X̂",
             "beta": f"add (broadcast): {dbeta} = Σ_rows {q.dz}"})


def _prelu(q, params, layer):
    a, da = params["alpha"]
    return ("prelu", f"prelu: {q.d_prev} = {q.dz} where {q.prev} > 0, {a}·{q.dz} elsewhere",
            {"alpha": f"multiply: {da} = Σ {q.dz}⊙min(0, {q.prev})"})


def _embedding(q, params, layer):
    e, de = params["E"]
    return ("embedding", f"embedding (a lookup: no gradient reaches the integer ids {q.prev})",
            {"E": f"scatter-add: {de}[v] = Σ of {q.dz} over every position holding token v"})


# what each recurrent kind's step hands back to h_{t−1} (the gradient δ_t of its gate pre-activations)
_STEP_BACK = {"simple_rnn": "δa_t = δh_t⊙g′(a_t); δh_{t−1} += δa_t·W_hh",
              "lstm": "δc_t = δc_{t+1}⊙f_{t+1} + δh_t⊙o⊙(1 − tanh²c_t); [δi, δf, δg, δo]_t = δz_t; "
                      "δh_{t−1} += δz_t·W_hh",
              "gru": "δn, δz, δr from δh_t; δh_{t−1} += δh_t⊙z + δ_t·W_hh"}


def _recurrent(q, params, layer):
    names = {name: pair[1] for name, pair in params.items()}
    rules = {"weight_ih": f"summed over steps: {names['weight_ih']} = Σ_t δ_tᵀ·X_t",
             "weight_hh": f"summed over steps: {names['weight_hh']} = Σ_t δ_tᵀ·h_(t−1)"}
    rules.update((name, f"summed over rows and steps: {names[name]} = Σ_t Σ_rows δ_t")
                 for name in ("bias_ih", "bias_hh", "bias") if name in names)
    return (layer.kind, f"BPTT, t = T … 1: {_STEP_BACK[layer.kind]}; {q.d_prev}_t = δ_t·W_ih", rules)


def _sequence_pool(q, params, layer):
    rule = (f"last step: {q.d_prev}_T = {q.dz}, 0 at every other step" if layer.mode == "last"
            else f"mean over time: {q.d_prev}_t = {q.dz}/T at every step")
    return ("sequence_pool", rule, {})


KINDS: dict[str, Rules] = {"dense": _dense, "conv2d": _conv, "max_pool2d": _max_pool,
                           "avg_pool2d": _avg_pool, "global_avg_pool2d": _global_avg, "flatten": _flatten,
                           "batch_norm": _batch_norm, "layer_norm": _layer_norm, "prelu": _prelu,
                           "embedding": _embedding, "simple_rnn": _recurrent, "lstm": _recurrent,
                           "gru": _recurrent, "sequence_pool": _sequence_pool}
"""Every layer kind's rules (a kind missing here is refused by :func:`graph_data`, naming it)."""
SPLIT_BIAS = ("dense", "conv2d")
"""The kinds drawn as two ops, the product and then ``add bias`` (Z_l = product + b_l)."""


def activation_rule(name: str, q: Names, out: str, d_out: str, slope: float) -> str:
    """The backward rule of g_l, from dH_l (``d_out``) to dZ_l; ``out`` names H_l."""
    z, dz = q.z, q.dz
    return {"relu": f"relu: routes where {z} > 0: {dz} = {d_out}⊙[{z} > 0]",
            "leaky_relu": f"leaky relu: {dz} = {d_out} where {z} > 0, {slope:g}·{d_out} elsewhere",
            "sigmoid": f"sigmoid: {dz} = {d_out}⊙{out}⊙(1 − {out})",
            "tanh": f"tanh: {dz} = {d_out}⊙(1 − {out}²)",
            "gelu": f"gelu: {dz} = {d_out}⊙(Φ({z}) + {z}·φ({z}))",
            "gelu_tanh": f"gelu (tanh form): {dz} = {d_out}⊙(½(1 + T) + ½·{z}·(1 − T²)·√(2/π)·"
                         f"(1 + 0.134145·{z}²)), T = tanh(√(2/π)·({z} + 0.044715·{z}³))",
            "softmax": f"softmax (row Jacobian): {dz} = {out}⊙({d_out} − Σ_row {d_out}⊙{out})"}[name]


# the loss's node label, and its backward rule: to Z_L where the engine fuses it, to A_L otherwise
LOSSES = {"cce": ("softmax+CE", "softmax+CE fused: {dz} = ({a} − Y)/m"),
          "bce": ("sigmoid+BCE", "sigmoid+BCE fused: {dz} = ({a} − Y)/(m·k)"),
          "mse": ("MSE", "MSE: {da} = 2({a} − Y)/(m·k)")}


class GraphBuilder:
    """Nodes and edges of one graph, read from ``run``."""

    def __init__(self, run: StudyRun):
        self.run = run
        self.nodes: dict[str, dict] = {}
        self.edges: list[dict] = []
        self.products: dict[int, str] = {}      # layer → the id of its matmul or conv2d node

    def node(self, id: str, op: str, kind: str, name: str | None, value, grad=None,
             grad_label: str = "grad", grad_name: str | None = None, note: str | None = None,
             layer: int | None = None, side: str | None = None) -> str:
        self.nodes[id] = {"id": id, "op": op, "kind": kind, "name": name, "side": side,
                          "shape": [int(n) for n in np.shape(value)], "value": summary(value),
                          "grad": None if grad is None else summary(grad),
                          "grad_label": grad_label if grad is not None else None,
                          "grad_name": grad_name if grad is not None else None,
                          "note": note, "layer": layer}
        return id

    def forward(self, source: str, target: str) -> None:
        self.edges.append({"from": source, "to": target, "kind": "forward"})

    def backward(self, source: str, target: str, rule: str) -> None:
        """The gradient flowing from ``source`` (the consumer) back to ``target`` (its input)."""
        self.edges.append({"from": source, "to": target, "kind": "backward", "rule": rule})

    def mark_reused(self) -> None:
        """A value with two or more backward edges into it gets their sum: say so on it and them."""
        into = Counter(edge["to"] for edge in self.edges if edge["kind"] == "backward")
        for id, count in into.items():
            if count > 1:
                self.nodes[id]["reused"] = True
                self.nodes[id]["note"] = f"Σ {REUSED}"
                for edge in self.edges:
                    if edge["kind"] == "backward" and edge["to"] == id:
                        edge["rule"] += f"; {REUSED}"

    def graph(self) -> dict:
        return layout(list(self.nodes.values()), self.edges)


def _parameters(run: StudyRun, layer: int) -> dict[str, tuple[str, str, np.ndarray, np.ndarray]]:
    """name → (display name, gradient name, value, gradient) of layer ``layer``'s trainable tensors."""
    spec = run.spec
    trainable = [t.name for t in spec.numbered_layers[layer - 1].tensors if t.trainable]
    if not trainable:
        return {}
    values = run.tensors[spec.parameter_layers.index(layer)]
    grads = run.gradients.dp[layer - 1]
    return {name: (f"{DISPLAY.get(name, name)}{layer}", gradient_name(name, layer), values[name], grad)
            for name, grad in zip(trainable, grads, strict=True)}


def _dropout_rate(run: StudyRun, layer: int) -> float:
    rates = run.spec.dropout_rates
    return rates[layer - 1] if layer - 1 < len(rates) else 0.0


def _mask(run: StudyRun, layer: int):
    return None if run.masks is None or layer - 1 >= len(run.masks) else run.masks[layer - 1]


def _fused(run: StudyRun) -> bool:
    """True where the loss hands back dZ_L itself (the engine computes no dA_L)."""
    return run.spec.n_layers not in run.gradients.da


def _layer(b: GraphBuilder, layer: int, prev: str) -> str:
    """Layer ``layer``'s nodes and edges after the node ``prev`` (A_{l−1}); the id of A_l's node."""
    run, q, index = b.run, Names(layer), layer - 1
    spec_layer = run.spec.numbered_layers[index]
    if spec_layer.kind not in KINDS:
        raise ValueError(f"study graph: layer {layer} is a {spec_layer.kind!r} layer, which the graph "
                         f"does not know; known kinds: {', '.join(KINDS)}")
    params = _parameters(run, layer)
    op, input_rule, param_rules = KINDS[spec_layer.kind](
        q, {name: p[:2] for name, p in params.items()}, spec_layer)
    z, dz = run.forward.z[index], run.gradients.dz[index]
    leaves = {name: b.node(display, "parameter", "parameter", display, value, grad, grad_label=grad_name,
                           grad_name=grad_name, layer=layer, side="left" if first else "right")
              for first, (name, (display, grad_name, value, grad)) in zip(
                  [True] + [False] * len(params), params.items(), strict=False)}
    last = layer == run.spec.n_layers
    activation = activation_of(spec_layer)
    rate = _dropout_rate(run, layer)
    z_is_a = activation == "identity" and not rate               # A_l = Z_l: one node, two names
    if spec_layer.kind in SPLIT_BIAS:
        bias, w = params["b"][2], params["W"][0]
        product_name = f"{q.prev}·{w}ᵀ" if op == "matmul" else f"{w}⊛{q.prev}"
        product_value = z - bias.reshape((-1,) + (1,) * (z.ndim - 2))     # Z_l − b_l, per channel
        product = b.node(f"{op}{layer}", op, "op", product_name, product_value, dz, grad_label=q.dz,
                         grad_name=q.dz, layer=layer)
        b.products[layer] = product
        b.forward(prev, product)
        b.forward(leaves["W"], product)
        z_id = b.node(q.z, "add bias", "op", q.z, z, dz, grad_label=q.dz, grad_name=q.dz, layer=layer)
        b.forward(product, z_id)
        b.forward(leaves["b"], z_id)
        if layer > 1:
            b.backward(product, prev, input_rule)
        b.backward(product, leaves["W"], param_rules["W"])
        b.backward(z_id, product, "add: passes the gradient on")
        b.backward(z_id, leaves["b"], param_rules["b"])
    else:
        z_id = b.node(q.z, op, "op", q.z, z, dz, grad_label=q.dz, grad_name=q.dz, layer=layer)
        b.forward(prev, z_id)
        if layer > 1:
            b.backward(z_id, prev, input_rule)
        for name, leaf in leaves.items():
            b.forward(leaf, z_id)
            b.backward(z_id, leaf, param_rules[name])
    if z_is_a:
        b.nodes[z_id]["alias"] = f"A{layer}"
    out = z_id
    a_name, da_name = f"A{layer}", f"dA{layer}"
    da = run.gradients.da.get(layer)
    if activation != "identity":
        h_name, dh_name = (f"H{layer}", f"dH{layer}") if rate else (a_name, da_name)
        mask = _mask(run, layer)
        if last and _fused(run):
            out = b.node(h_name, activation, "op", h_name, run.forward.h[index],
                         note="off the gradient path (fused loss)", layer=layer)
            b.forward(z_id, out)
        else:
            dh = da if not rate else run.network.dropout.backward(da, mask)
            out = b.node(h_name, activation, "op", h_name, run.forward.h[index], dh, grad_label=dh_name,
                         grad_name=dh_name if dh_name in run.named else None, layer=layer)
            b.forward(z_id, out)
            b.backward(out, z_id, activation_rule(activation, q, h_name, dh_name,
                                                  run.spec.leaky_relu_slope))
    if rate:
        mask = _mask(run, layer)
        a_id = b.node(a_name, f"dropout (p = {rate:g})", "op", a_name, run.forward.a[index], da,
                      grad_label=da_name, grad_name=da_name, layer=layer,
                      note=None if mask is not None else "no mask this step: A = H")
        b.forward(out, a_id)
        d_in = f"dH{layer}" if activation != "identity" else q.dz
        if mask is not None:
            mask_id = b.node(f"D{layer}", "dropout mask", "data", f"D{layer}", mask, layer=layer,
                             side="right")
            b.forward(mask_id, a_id)
            b.backward(a_id, out, f"dropout: the mask routes: {d_in} = {da_name}⊙D{layer}")
        else:
            b.backward(a_id, out, f"dropout, no mask this step: {d_in} = {da_name}")
        out = a_id
    return out


def _loss(b: GraphBuilder, out: str) -> str:
    """The loss nodes after the output layer's node ``out``; the id of the loss L."""
    run = b.run
    spec, last = run.spec, run.spec.n_layers
    op, rule = LOSSES[spec.loss]
    a_name, z_name = f"A{last}", f"Z{last}"
    y = b.node("Y", "target", "data", "Y", run.targets, side="right")
    with_l2 = bool(spec.l2)
    data_loss = (run.network.loss_fn.value(run.forward.z[-1], run.forward.a[-1], run.targets)
                 if with_l2 else run.loss)
    loss = b.node("loss", op, "loss", "L_data" if with_l2 else "L", data_loss, 1.0,
                  grad_label="dL/dL" if not with_l2 else "dL")
    b.forward(out, loss)
    b.forward(y, loss)
    if _fused(run):
        b.backward(loss, z_name, rule.format(dz=f"dZ{last}", a=a_name, da=f"dA{last}"))
    else:
        b.backward(loss, out, rule.format(dz=f"dZ{last}", a=a_name, da=f"dA{last}"))
    if not with_l2:
        return loss
    penalty = b.node("L2", "L2 penalty", "loss", f"(λ/2)·Σ‖W‖², λ = {spec.l2:g}",
                     run.network.l2_penalty(), 1.0, grad_label="dL")
    for layer in spec.kernel_layers:
        _penalty_edges(b, penalty, layer)
    total = b.node("total", "add", "loss", "L", run.loss, 1.0, grad_label="dL/dL")
    for part in (loss, penalty):
        b.forward(part, total)
        b.backward(total, part, "add: passes the gradient on (1)")
    return total


def _penalty_edges(b: GraphBuilder, penalty: str, layer: int) -> None:
    """W_l into the L2 penalty; its rule box sits beside the product W_l feeds (``near``), not at
    the far end of the long edge down to the penalty."""
    w_name, dw_name = _parameters(b.run, layer)["W"][:2]
    if w_name in b.nodes:
        b.forward(w_name, penalty)
        b.backward(penalty, w_name, f"L2: adds λ·{w_name} to {dw_name}")
        b.edges[-1]["near"] = b.products[layer]


def full_graph(run: StudyRun) -> dict:
    """Every op of the step: the input, each layer at full detail, the loss (and L2)."""
    b = GraphBuilder(run)
    out = b.node("X", "input", "data", "X", run.x, note="no gradient (the input)")
    for layer in range(1, run.spec.n_layers + 1):
        out = _layer(b, layer, out)
    _loss(b, out)
    b.mark_reused()
    return b.graph()


def layer_graph(run: StudyRun, layer: int) -> dict:
    """Layer ``layer`` alone at full detail: its input A_{l−1} as it comes from the layer before,
    its own ops, and the loss for the output layer; with L2, the penalty its kernel feeds."""
    b = GraphBuilder(run)
    if layer == 1:
        prev = b.node("X", "input", "data", "X", run.x, note="no gradient (the input)")
    else:
        name, grad_name = f"A{layer - 1}", f"dA{layer - 1}"
        prev = b.node(name, f"from layer {layer - 1}", "op", name, run.forward.a[layer - 2],
                      run.gradients.da.get(layer - 1), grad_label=grad_name, grad_name=grad_name)
    out = _layer(b, layer, prev)
    if layer == run.spec.n_layers:
        _loss(b, out)
    elif run.spec.l2 and layer in run.spec.kernel_layers:
        penalty = b.node("L2", "L2 penalty", "loss", f"(λ/2)·Σ‖W‖², λ = {run.spec.l2:g}",
                         run.network.l2_penalty(), 1.0, grad_label="dL")
        _penalty_edges(b, penalty, layer)
    b.mark_reused()
    return b.graph()


def overview_graph(run: StudyRun) -> dict:
    """One node per numbered layer (its output A_l with dA_l and dZ_l), the loss, and each backward
    edge's rule: the input-gradient rule of the layer the gradient comes back through."""
    b = GraphBuilder(run)
    spec = run.spec
    prev = b.node("X", "input", "data", "X", run.x, note="no gradient (the input)")
    for layer in range(1, spec.n_layers + 1):
        index, q = layer - 1, Names(layer)
        spec_layer = spec.numbered_layers[index]
        if spec_layer.kind not in KINDS:
            raise ValueError(f"study graph: layer {layer} is a {spec_layer.kind!r} layer, which the "
                             f"graph does not know; known kinds: {', '.join(KINDS)}")
        params = _parameters(run, layer)
        _, input_rule, _ = KINDS[spec_layer.kind](q, {n: p[:2] for n, p in params.items()}, spec_layer)
        op = layer_title(run, layer)
        da = run.gradients.da.get(layer)
        note = ("params " + ", ".join(f"{p[0]} ({', '.join(map(str, np.shape(p[2])))})"
                                      for p in params.values())) if params else None
        grad, label = (da, f"dA{layer}") if da is not None else (run.gradients.dz[index], q.dz)
        node = b.node(f"L{layer}", op, "op", f"A{layer}", run.forward.a[index], grad, grad_label=label,
                      grad_name=label, note=note, layer=layer)
        if da is not None:
            b.nodes[node]["grads_more"] = [{"label": q.dz, "name": q.dz,
                                            "grad": summary(run.gradients.dz[index])}]
        b.forward(prev, node)
        if layer > 1:
            b.backward(node, prev, input_rule)
        prev = node
    last = spec.n_layers
    op, rule = LOSSES[spec.loss]
    y = b.node("Y", "target", "data", "Y", run.targets, side="right")
    loss = b.node("loss", op + (" + L2" if spec.l2 else ""), "loss", "L", run.loss, 1.0, grad_label="dL/dL")
    b.forward(prev, loss)
    b.forward(y, loss)
    b.backward(loss, prev, rule.format(dz=f"dZ{last}", a=f"A{last}", da=f"dA{last}")
               + (f"; L2 adds λ·W to each dW, λ = {spec.l2:g}" if spec.l2 else ""))
    return b.graph()


def layer_title(run: StudyRun, layer: int) -> str:
    """``dense(120, relu) + dropout(0.25)``: the numbered layer and the dropout that follows it."""
    rate = _dropout_rate(run, layer)
    return describe_layer(run.spec.numbered_layers[layer - 1]) + (f" + dropout({rate:g})" if rate else "")


def collapses(run: StudyRun) -> bool:
    """True for a stack with any layer but dense: drawn one node per layer, each expandable."""
    return any(layer.kind != "dense" for layer in run.spec.numbered_layers)


def graph_data(run: StudyRun) -> dict:
    """The annotated graph of the run's step, JSON-ready: ``nodes`` and ``edges`` (laid out:
    ``x``, ``y`` centre, ``w``, ``h`` of each box; ``points`` of each edge; a backward edge's
    ``rule`` and its ``label`` box), ``width`` and ``height``; ``collapsed``, and for a collapsed
    stack ``layers``: per numbered layer its detailed graph in the same form."""
    collapsed = collapses(run)
    main = overview_graph(run) if collapsed else full_graph(run)
    layers = ([{"layer": layer, "title": layer_title(run, layer),
                **layer_graph(run, layer)} for layer in range(1, run.spec.n_layers + 1)]
              if collapsed else [])
    return {"stack": run.spec.describe_stack(), "batch": int(len(run.x)), "loss": float(run.loss),
            "collapsed": collapsed, **main, "layers": layers}


# ---------------------------------------------------------------------------------------- layout

SIDES = {"left": 0, "right": 2}


class _View:
    """A vertex's box for grandalf (``w``, ``h``; grandalf sets ``xy``, the centre)."""

    def __init__(self, w: float, h: float):
        self.w, self.h, self.xy = w, h, (0.0, 0.0)


class _EdgeView:
    def setpath(self, points) -> None:
        self.points = [tuple(p) for p in points]


def _clip(box: dict, inside: tuple[float, float], outside: tuple[float, float]) -> tuple[float, float]:
    """Where the segment from ``inside`` (the box's centre) to ``outside`` leaves the box."""
    (x0, y0), (x1, y1) = inside, outside
    dx, dy = x1 - x0, y1 - y0
    scale = min(box["w"] / 2 / abs(dx) if dx else np.inf, box["h"] / 2 / abs(dy) if dy else np.inf, 1.0)
    return (x0 + dx * scale, y0 + dy * scale)


def layout(nodes: list[dict], edges: list[dict]) -> dict:
    """Place ``nodes`` and route ``edges`` with grandalf's Sugiyama layout (top to bottom, along
    the forward direction); the graph with ``x``, ``y``, ``w``, ``h`` on every node, ``points``
    on every edge, a ``label`` box on every backward edge, and its ``width`` and ``height``.

    A backward edge's rule becomes a vertex of its own between the two values it joins, so no rule
    box overlaps a node; a backward edge with no forward edge of its own (the fused loss's, to
    Z_L) is laid out as if it ran forward. An edge's ``near`` (a node) adds an unseen edge from its
    rule box to that node, which keeps the box up beside it."""
    boxes = {node["id"]: node for node in nodes}
    vertices = {}
    for id, node in boxes.items():
        node["w"], node["h"] = svg.node_size(node)
        vertices[id] = Vertex(id)
        vertices[id].view = _View(node["w"], node["h"])
    pairs: dict[tuple[str, str], dict[str, dict]] = {}          # (producer, consumer) → its edges
    for edge in edges:
        key = (edge["from"], edge["to"]) if edge["kind"] == "forward" else (edge["to"], edge["from"])
        pairs.setdefault(key, {})[edge["kind"]] = edge
    links, routes, rule_boxes = [], [], []
    for (source, target), pair in pairs.items():
        hops = [vertices[source], vertices[target]]
        back = pair.get("backward")
        if back is not None:
            width, height = svg.rule_size(back["rule"])
            back["label"] = {"w": width, "h": height}
            rule_box = Vertex(("rule", source, target))
            rule_box.view = _View(width, height)
            rule_boxes.append(rule_box)
            hops.insert(1, rule_box)
            if back.get("near") in vertices:
                links.append(Edge(rule_box, vertices[back["near"]]))
        legs = [Edge(u, v) for u, v in zip(hops, hops[1:], strict=False)]
        for leg in legs:
            leg.view = _EdgeView()
        links += legs
        routes.append((pair, legs, hops))
    graph = Graph(list(vertices.values()) + rule_boxes, links)
    if len(graph.C) != 1:
        raise ValueError(f"study graph: {len(graph.C)} unconnected parts; expected one graph")
    _sugiyama(graph.C[0], boxes)
    views = [v.view for v in vertices.values()] + [v.view for v in rule_boxes]
    dx = svg.MARGIN - min(v.xy[0] - v.w / 2 for v in views)       # the drawing starts at the margin
    dy = svg.MARGIN - min(v.xy[1] - v.h / 2 for v in views)
    for id, vertex in vertices.items():
        boxes[id]["x"], boxes[id]["y"] = round(vertex.view.xy[0] + dx, 1), round(vertex.view.xy[1] + dy, 1)
    for pair, legs, hops in routes:
        points = list(legs[0].view.points)
        for leg in legs[1:]:
            points += leg.view.points[1:]
        points = [(x + dx, y + dy) for x, y in points]
        points[0] = _clip(boxes[hops[0].data], points[0], points[1])
        points[-1] = _clip(boxes[hops[-1].data], points[-1], points[-2])
        points = [[round(x, 1), round(y, 1)] for x, y in points]
        for kind, edge in pair.items():
            edge["points"] = points if kind == "forward" else points[::-1]
        if "backward" in pair:
            x, y = hops[1].view.xy
            pair["backward"]["label"].update(x=round(x + dx, 1), y=round(y + dy, 1))
    every = nodes + [edge["label"] for edge in edges if "label" in edge]
    right = max([box["x"] + box["w"] / 2 for box in every]
                + [p[0] + svg.BACK_OFFSET for edge in edges for p in edge["points"]])
    bottom = max(box["y"] + box["h"] / 2 for box in every)
    return {"nodes": nodes, "edges": edges, "width": int(np.ceil(right + svg.MARGIN)),
            "height": int(np.ceil(bottom + svg.MARGIN))}


def _sugiyama(component, boxes: dict) -> None:
    """grandalf's layered layout of ``component`` (a vertex's ``view.xy`` becomes its centre)."""
    sugiyama = SugiyamaLayout(component)
    sugiyama.xspace, sugiyama.yspace = X_SPACE, Y_SPACE
    sugiyama.dw, sugiyama.dh = 8, 8            # a long edge's bend points take little room
    sugiyama.init_all(optimize=True)

    # the start order within each layer: weights left of the value they multiply, biases, masks
    # and targets right of it (with their rule boxes), so the chain of values runs down the middle
    # instead of drifting to one side by half a box at every two-input op
    def side(vertex) -> int:
        data = getattr(vertex, "data", None)
        id = data[1] if isinstance(data, tuple) else data
        return SIDES.get(boxes[id].get("side"), 1) if id in boxes else 1
    for rank in sugiyama.layers:
        rank.sort(key=side)
        rank.setup(sugiyama)
    sugiyama.draw()


# ---------------------------------------------------------------------------------------- blocks

LEGEND = ("How to read it: each box is one value of the step — its op, its name and shape, then μ (mean), "
          "σ (standard deviation) and [min, max] of its forward value and of its gradient, from this run. "
          "Solid grey arrows run forward; dashed red arrows carry the gradient back, each with its local "
          "rule: add passes the gradient on, multiply (matmul, conv) swaps its inputs, relu, dropout and "
          "max-pool route it, and a value used twice (a thick border) gets the sum of its gradients.")


def graph_blocks(data: dict, id: str = "graph") -> list:
    """The report's blocks for :func:`graph_data`'s graph: a legend paragraph and the drawing; for a
    collapsed stack, one closed ``Details`` per layer with that layer's own detailed drawing.
    ``id`` prefixes the drawings' marker ids: give each model's graph on one page its own."""
    what = (f"{data['stack']}, one training step on {data['batch']} samples (loss {svg.fmt(data['loss'])})")
    if data["collapsed"]:
        title = f"The step's graph, one box per layer: {what}"
    else:
        title = f"The step's graph, every op: {what}"
    blocks = [LEGEND, Svg(svg.draw(data, id, title), title)]
    if data["collapsed"]:
        blocks.append("Open a layer to see its own ops, parameters and rules:")
        for layer in data["layers"]:
            summary_line = f"Layer {layer['layer']}: {layer['title']}"
            blocks.append(Details(summary_line, [Svg(svg.draw(layer, f"{id}-layer-{layer['layer']}",
                                                              summary_line), summary_line)]))
    return blocks
