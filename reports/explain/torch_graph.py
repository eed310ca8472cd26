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
    attributed, _, _ = _attribute(backend, x, targets, masks)
    return {name: ([[type(node).__name__ for node in branch] for branch in branches],
                   None if sink is None else type(sink).__name__)
            for name, (branches, sink) in attributed.items()}


def saved_tensors(backend, x, targets, masks=None) -> dict[str, str]:
    """{"Z2": "AddmmBackward0 saved mat1 (8, 64), mat2 (64, 32)", "dW2": …}: for each forward
    quantity the node that recorded it (``Z.grad_fn``), for each gradient the first node that
    produces it (the first node of its first branch: AddmmBackward0 for dW, which saved A_{l−1}), with
    what that node saved for its backward (its ``_saved_*`` attributes: a tensor
    by its shape, anything else by its value)."""
    attributed, recorded, _ = _attribute(backend, x, targets, masks)
    out = {name: _saved(node) for name, node in recorded.items() if node is not None}
    for name, (branches, _) in attributed.items():
        first = next((branch[0] for branch in branches if branch), None)
        if first is not None:
            out[name] = _saved(first)
    return out


def forward_nodes(backend, x, targets, masks=None) -> dict[str, str]:
    """{"Z2": "AddmmBackward0", …}: the node that recorded each forward value (its ``grad_fn``)."""
    _, recorded, _ = _attribute(backend, x, targets, masks)
    return {name: type(node).__name__ for name, node in recorded.items() if node is not None}


def grad_fn_record(backend, x, targets, masks=None) -> list[str]:
    """torch's record of the backward pass: every autograd node reachable from ``loss.grad_fn``,
    in the order the backward runs them, one line each with what it saved, and "→ dW2" where it
    produces a named quantity: the last node of each of its branches, the one whose output is the
    quantity (``TBackward0`` for dW, ``LogSoftmaxBackward0`` for a CCE's dZ_L), or, for a
    parameter with no node in between, the ``AccumulateGrad`` that stores it."""
    attributed, _, order = _attribute(backend, x, targets, masks)
    produces = {}
    for name, (branches, sink) in attributed.items():
        last = [branch[-1] for branch in branches if branch]
        for node in last or ([sink] if sink is not None else []):
            produces.setdefault(node, []).append(name)
    return [_saved(node) + (f"  → {', '.join(produces[node])}" if node in produces else "") for node in order]


def _saved(node) -> str:
    parts = []
    for attribute in sorted(dir(node)):
        if not attribute.startswith("_saved_") or attribute.endswith(("_raw", "_sym_sizes", "_sym_strides")):
            continue
        try:
            value = getattr(node, attribute)
        except RuntimeError:                    # freed after a backward pass
            continue
        shape = getattr(value, "shape", None)
        label = attribute[len("_saved_"):]
        if shape is not None:
            parts.append(f"{label} {tuple(shape)}")
        elif isinstance(value, (int, float, bool, tuple, str)):
            parts.append(f"{label}={value}")
    name = type(node).__name__
    return f"{name} saved {', '.join(parts)}" if parts else f"{name} (saved nothing)"


def _attribute(backend, x, targets, masks):
    """({quantity: (branches of nodes, sink node or None)}, {forward quantity: its grad_fn}, every
    node in the order the backward pass runs them)."""
    zs, activations = backend.forward(x, masks, keep_intermediates=True)   # Z_1 has a node without W_1
    loss = backend.loss(zs[-1], activations[-1], targets)
    parents, order = _graph(loss.grad_fn)
    starts, recorded = {}, {}                                 # quantity → the node that consumes it
    for layer, (z, a) in enumerate(zip(zs, activations, strict=True), start=1):
        starts[f"dZ{layer}"] = recorded[f"Z{layer}"] = z.grad_fn
        starts[f"dA{layer}"] = recorded[f"A{layer}"] = a.grad_fn
    leaves = {}                                               # parameter → its quantity's name
    spec = backend.spec
    for held, names in zip(backend.held, spec.gradient_names, strict=True):
        leaves.update((id(parameter), name) for parameter, name in zip(held.values(), names, strict=True))
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
        sink = start if getattr(start, "variable", None) is not None else None
        out[name] = (branches, sink)
    return out, recorded, order


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
