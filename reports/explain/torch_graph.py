"""Which torch autograd nodes produce each gradient, walked from ``loss.grad_fn``.

A node is the backward of one recorded forward op: it receives dL/d(output) and emits dL/d(input)
for each of its inputs, handing them on through ``next_functions``. For a tensor T with node
N_T = ``T.grad_fn`` (the node that *consumes* dL/dT), dL/dT is emitted by N_T's parents. Walking
up from N_T through parents, and stopping at (and including) the first node that consumes another
named quantity (dL/dZ_k, dL/dA_k) or is the loss itself, gives every node that turns the upstream
quantity into dL/dT, e.g. for a ReLU hidden layer

    dL/dA_l  ← AddmmBackward0 of layer l+1           (dZ_{l+1} · W_{l+1})
    dL/dZ_l  ← ReluBackward0                          (dA_l ⊙ [Z_l > 0])
    dL/dW_l  ← AddmmBackward0 → TBackward0 → AccumulateGrad(W_l)

and in a conv stack, e.g. conv → BatchNorm → max-pool, ``ConvolutionBackward0`` (a conv's dA_{l−1},
dW_l, db_l: one node emits all three), ``NativeBatchNormBackward0`` (BatchNorm's dA_{l−1}, dγ, dβ)
and ``MaxPool2DWithIndicesBackward0``. The parameters are those of the spec's
``parameter_layers`` (``TorchBackend.held``, in that order); a layer without them has
dZ_l and dA_l rows only.

A parameter's leaf node is its ``AccumulateGrad`` (matched by ``node.variable is weight``), which
is listed too, as the sink: it is what writes ``.grad``. Where a node has several parents, their
contributions are summed into its input: each parent's path is one branch (with L2, dW_l is the
sum of the Addmm path and the Pow path of the penalty). Attribution is exact (node identity, no
name matching); within a branch the nodes are listed in the order they run (root first).
"""

from __future__ import annotations


def producers(backend, x, targets, masks=None) -> dict[str, tuple[list[list[str]], str | None]]:
    """{"dW3": ([["AddmmBackward0", "TBackward0"]], "AccumulateGrad"), …}: for each gradient of a
    real forward pass of ``backend`` (a ``twins.torch_backend.TorchBackend``), the branches of
    autograd nodes that produce it and the node they meet in (None: summed in the input buffer)."""
    zs, activations = backend.forward(x, masks, keep_intermediates=True)   # Z_1 has a node without W_1
    loss = backend.loss(zs[-1], activations[-1], targets)
    parents, order = _graph(loss.grad_fn)
    starts = {}                                               # quantity → the node that consumes it
    for layer, (z, a) in enumerate(zip(zs, activations, strict=True), start=1):
        starts[f"dZ{layer}"] = z.grad_fn
        starts[f"dA{layer}"] = a.grad_fn
    leaves = {}                                               # parameter → its quantity's name
    spec = backend.spec
    for layer, held, traces in zip(spec.parameter_layers, backend.held, spec.parameter_traces, strict=True):
        leaves.update((id(parameter), f"{trace}{layer}") for parameter, trace in zip(held.values(), traces,
                                                                                     strict=True))
    for node in order:
        variable = getattr(node, "variable", None)
        if variable is not None and id(variable) in leaves:
            starts[leaves[id(variable)]] = node
    stops = ({loss.grad_fn} | {z.grad_fn for z in zs} | {a.grad_fn for a in activations}) - {None}
    rank = {node: index for index, node in enumerate(order)}
    out = {}
    for name, start in starts.items():
        if start not in rank:                                 # not on the loss's path (dA_L for CCE)
            continue
        branches = [sorted(_upstream(parent, parents, stops), key=rank.__getitem__)
                    for parent in dict.fromkeys(parents.get(start, []))]
        sink = type(start).__name__ if getattr(start, "variable", None) is not None else None
        out[name] = ([[type(node).__name__ for node in branch] for branch in branches], sink)
    return out


def _graph(root):
    """(parents of every node, the nodes in an order where each comes before its children)."""
    parents, seen, post = {root: []}, set(), []
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            post.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        for child, _ in node.next_functions:
            if child is not None:
                parents.setdefault(child, []).append(node)
                stack.append((child, False))
    return parents, post[::-1]


def _upstream(first, parents, stops) -> set:
    """``first`` and its ancestors, up to and including the first node of ``stops`` on each path."""
    found, stack = set(), [first]
    while stack:
        node = stack.pop()
        if node in found:
            continue
        found.add(node)
        if node not in stops:
            stack.extend(parents.get(node, []))
    return found
