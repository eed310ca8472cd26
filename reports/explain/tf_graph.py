"""Which TensorFlow ops produce each gradient, read from a traced ``tf.GradientTape`` graph.

The Keras backend's own forward pass and loss (its public ``forward`` / ``loss`` hooks) run under a
``tf.GradientTape`` inside a ``tf.function``; ``tape.gradient`` then adds the gradient ops to the
same graph, after every forward op (so "created after the forward pass" is exactly "a gradient
op"). The tape returns one graph tensor per named quantity (dL/dZ_l, dL/dA_l, dL/dkernel_l,
dL/dbias_l). For each, the ops listed are the gradient ops on the paths from the other named
gradient tensors (or the seed dL/dL = 1) to it: walking back from its producer through op inputs,
stopping at another named gradient tensor, at a forward value (Z_l, A_l, a kernel read — inputs,
not producers) and at constants. A forward op's secondary output read on the way is listed as
``Type:index``: without op determinism, ``SoftmaxCrossEntropyWithLogits`` computes the CCE
gradient during the forward pass and hands it over as output 1 (with determinism, as this
project configures it, TF decomposes the loss and its gradient into LogSoftmax, Exp, Sub, …).
E.g. for a ReLU hidden layer

    dL/dA_l  ← MatMul          (dZ_{l+1} · kernelᵀ, in layer l+1's MatMul gradient)
    dL/dZ_l  ← ReluGrad        (reads A_l = Relu(Z_l))
    dL/dW_l  ← MatMul          (A_{l−1}ᵀ · dZ_l: the kernel (in, out), i.e. dW_lᵀ)
    dL/db_l  ← BiasAddGrad     (or Sum, Reshape where Keras adds the bias with Add)

and in a conv stack ``Conv2DBackpropInput`` / ``Conv2DBackpropFilter`` (a conv's dA_{l−1} / dW_l)
and ``MaxPoolGrad``. Keras 3 normalizes with ``tf.nn.batch_normalization`` (Rsqrt, Mul, Sub, …),
not the fused kernel, so BatchNorm's backward is ``RsqrtGrad`` among Mul/Sum/AddN ops, never
``FusedBatchNormGradV3``. The variables are the trainable tensors (W_l, b_l; a PReLU's α_l) of the
spec's ``parameter_layers``, in order.

The producer of the named tensor is the sink; where several of its inputs carry gradients (the
tape sums contributions with AddN, e.g. dW_l's MatMul and the L2 path), each input's ops form one
branch. Within a branch, ops are in graph order (the order they run; side inputs such as the Exp
of a log-softmax gradient are listed where they were created).

The layer attribution follows data flow, not op names: Keras' name scopes in a traced graph are
uniquified per graph (the layer ``dense`` may record its ops under ``dense_1/``), so scope names
do not identify layers reliably. What is recorded is the graph as traced, before Grappler's
rewrites; eager execution (``KerasBackend.trace``) runs the same gradient functions op by op.
"""

from __future__ import annotations

import tensorflow as tf


def producers(backend, x, targets, masks=None) -> dict[str, tuple[list[list[str]], str | None]]:
    """{"dZ2": ([], "ReluGrad"), "dW3": ([...], "AddN"), …}: for each gradient of ``backend`` (a
    ``twins.keras_backend.KerasBackend``), the branches of gradient ops that lead to the op
    producing it, and that op."""
    graph, record = _traced(backend, x, targets, masks)
    rank = {op.name: index for index, op in enumerate(graph.get_operations())}
    gradient_tensors = set(record["named"].values())
    out = {}
    for name, tensor_name in record["named"].items():
        sink = graph.get_tensor_by_name(tensor_name).op
        stops = gradient_tensors - {tensor_name}
        branches = [_branch(tensor, stops, rank, record["forward_ops"]) for tensor in sink.inputs]
        out[name] = ([branch for branch in branches if branch], sink.type)
    return out


def forward_ops(backend, x, targets, masks=None) -> dict[str, str]:
    """{"Z2": "MatMul → BiasAdd", "A2": "Relu", …}: for each forward value Z_l, A_l of ``backend``'s
    traced forward pass, the ops that compute it from the previous named values (the input, the
    other Z and A), in graph order; variable reads, constants and identities left out."""
    graph, record = _traced(backend, x, targets, masks)
    rank = {op.name: index for index, op in enumerate(graph.get_operations())}
    named = record["forward"]
    out = {}
    for name, tensor_name in named.items():
        stops = set(named.values()) - {tensor_name}
        found, stack = {}, [graph.get_tensor_by_name(tensor_name)]
        while stack:
            tensor = stack.pop()
            op = tensor.op
            if tensor.name in stops or op.name in found or op.type in PLUMBING:
                continue
            found[op.name] = (rank[op.name], op.type)
            stack.extend(op.inputs)
        out[name] = " → ".join(label for _, label in sorted(found.values())) or "—"
    return out


# ops that move or read a value without computing one
PLUMBING = ("Const", "ReadVariableOp", "Identity", "Placeholder", "NoOp")


def tape_record(backend, x, targets, masks=None) -> list[str]:
    """The gradient ops ``tape.gradient`` added to the traced graph, in the order they run, one
    line each: "Type  name ← input types" (constants left out), with "→ dW2" where the op writes a
    named gradient."""
    graph, record = _traced(backend, x, targets, masks)
    writes = {}
    for name, tensor_name in record["named"].items():
        writes.setdefault(graph.get_tensor_by_name(tensor_name).op.name, []).append(name)
    lines = []
    for op in graph.get_operations()[record["forward_ops"]:]:
        if op.type in ("Const", "Identity", "NoOp"):
            continue
        inputs = ", ".join(t.op.type for t in op.inputs if t.op.type != "Const")
        named = f"  → {', '.join(writes[op.name])}" if op.name in writes else ""
        lines.append(f"{op.type}({inputs}){named}")
    return lines


def _traced(backend, x, targets, masks):
    """(the traced graph, {"forward_ops": how many ops the forward pass made, "named": {quantity:
    its gradient tensor's name}, "forward": {Z_l, A_l: its tensor's name}})."""
    record = {}

    @tf.function(autograph=False)
    def traced():
        graph = tf.compat.v1.get_default_graph()
        with tf.GradientTape() as tape:
            zs, activations = backend.forward(x, masks)
            loss = backend.loss(zs[-1], activations[-1], targets)
        record["forward_ops"] = len(graph.get_operations())
        record["forward"] = {f"{stem}{layer}": tensor.name for stem, values in (("Z", zs), ("A", activations))
                             for layer, tensor in enumerate(values, start=1)}
        grads = tape.gradient(loss, {"Z": zs, "A": activations, "W": backend.variables},
                              unconnected_gradients=tf.UnconnectedGradients.NONE)
        named = {}
        for layer in range(1, len(zs) + 1):
            named[f"dZ{layer}"] = grads["Z"][layer - 1]
            named[f"dA{layer}"] = grads["A"][layer - 1]
        # every declared tensor's gradient is its variable's (a Keras GRU's (2, 3H) bias holds two)
        by_variable = {id(variable): grad
                       for variable, grad in zip(backend.variables, grads["W"], strict=True)}
        names = [name for layer_names in backend.spec.gradient_names for name in layer_names]
        named.update((name, by_variable[id(parameter.variable)])
                     for name, parameter in zip(names, backend.layouts, strict=True))
        record["named"] = {name: tensor.name for name, tensor in named.items() if tensor is not None}
        return [tensor for tensor in named.values() if tensor is not None]

    return traced.get_concrete_function().graph, record


def _branch(tensor, stops, rank, first_gradient_op) -> list[str]:
    """The gradient ops ``tensor`` depends on, short of ``stops``, forward values and constants,
    in graph order; a forward op's secondary output that they read is listed as ``Type:index``."""
    found, stack = {}, [tensor]
    while stack:
        tensor = stack.pop()
        op = tensor.op
        if tensor.name in stops or op.type == "Const":
            continue
        if rank[op.name] < first_gradient_op:
            if tensor.value_index > 0:
                found[tensor.name] = (rank[op.name], f"{op.type}:{tensor.value_index}")
        elif op.name not in found:
            found[op.name] = (rank[op.name], op.type)
            stack.extend(op.inputs)
    return [label for _, label in sorted(found.values())]
