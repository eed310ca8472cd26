"""Where the engine's step goes, for ``bench --profile`` (any catalog model): the engine's layer
calls timed one by one on the bench's batch (:func:`engine_profile`), im2col's matrix P per conv
layer (:func:`patches_bytes`) and tracemalloc's peak over one engine step (:func:`step_peak_bytes`).
"""

from __future__ import annotations

import statistics
import time
import tracemalloc

import numpy as np

from reports.bench.grid import bench_batch
from scratch.model import Network
from scratch.optimizers import make_optimizer
from twins.backends import make_backend


def profile_row(spec, batch: int, repeats: int) -> dict:
    """The three figures of the module docstring for the grid point ``spec`` at ``batch``."""
    return {"engine_profile_s": engine_profile(spec, batch, repeats=repeats),
            "im2col": patches_bytes(spec, batch),
            "engine_step_tracemalloc_peak_bytes": step_peak_bytes(spec, batch)}


def patches_bytes(spec, batch: int) -> list[dict]:
    """im2col's P per conv layer: (m·H_out·W_out) × (C·k_h·k_w) numbers × itemsize (the engine
    holds it as the transpose, (C·k_h·k_w, H_out·W_out·m): the same bytes)."""
    rows = []
    for layer, layer_spec in zip(range(1, spec.n_layers + 1), spec.numbered_layers, strict=True):
        if layer_spec.kind != "conv2d":
            continue
        channels = spec.layer_shapes[layer - 1][0]
        _, h_out, w_out = spec.layer_shapes[layer]
        k_h, k_w = layer_spec.kernel_size if isinstance(layer_spec.kernel_size, tuple) else (
            layer_spec.kernel_size,) * 2
        shape = (batch * h_out * w_out, channels * k_h * k_w)
        rows.append({"layer": layer, "rows": shape[0], "cols": shape[1],
                     "bytes": shape[0] * shape[1] * np.dtype(spec.dtype).itemsize})
    return rows


def step_peak_bytes(spec, batch: int) -> int:
    """tracemalloc's peak over one engine step (after a warm-up step), NumPy's allocations included."""
    x, targets, tensors = bench_batch(spec, batch)
    backend = make_backend("scratch", spec, tensors=tensors)
    backend.train_step(x, targets)
    tracemalloc.start()
    try:
        backend.train_step(x, targets)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _medians_interleaved(calls: dict, repeats: int) -> dict[str, float]:
    """Median seconds of every callable, timed in rounds (each callable once per round), so that a
    busy machine slows every part alike."""
    for call in calls.values():
        call()
    samples = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def engine_profile(spec, batch: int, repeats: int = 20) -> dict[str, float]:
    """Median seconds of the engine's parts of one step on the bench's batch, by calling each
    layer's own methods on the activations of a real forward pass (all parts and the whole step
    timed in interleaved rounds):

    * conv ``l`` im2col — ``Conv2D.patches``; forward GEMM — ``run`` minus im2col;
    * conv ``l`` dW, db — ``differentiate`` without the input gradient; col2im — with it, minus
      without: dP = W₂ᵀ·dZ₂ and the k_h·k_w strided additions into dX_p; "of which the dP GEMM" —
      a product of the same shapes, (C·k_h·k_w, O)·(O, H_out·W_out·m);
    * pooling, flatten and dense — ``run`` (forward) and ``differentiate`` (backward);
    * activations, loss — ReLU/softmax forward and backward, the loss and its gradient;
    * step — ``Network.train_step`` whole; "rest" is the step minus the parts (SGD, the stack's
      glue, and what isolated calls on warm caches do not pay).
    """
    x, targets, tensors = bench_batch(spec, batch)
    model = Network(spec, tensors=tensors)
    forward = model.forward(x)
    grads = model.backward(forward, targets)
    calls, activation_calls = {}, []
    for index, operation in enumerate(model.layers):
        layer = index + 1
        kind = spec.numbered_layers[index].kind
        a_prev = forward.x if index == 0 else forward.a[index - 1]
        dz, cache = grads.dz[index], forward.caches[index]
        upstream = index > 0
        name = {"conv2d": "conv", "max_pool2d": "pool"}.get(kind, kind) + str(layer)
        calls[f"{name} run"] = lambda op=operation, a=a_prev: op.run(a, True, False)
        calls[f"{name} differentiate"] = (lambda op=operation, d=dz, a=a_prev, c=cache, u=upstream:
                                          op.differentiate(d, a, c, 0.0, input_gradient=u))
        if kind == "conv2d":
            calls[f"{name} patches"] = lambda op=operation, a=a_prev: op.patches(a)
            calls[f"{name} no input gradient"] = (lambda op=operation, d=dz, a=a_prev, c=cache:
                                                  op.differentiate(d, a, c, 0.0, input_gradient=False))
            if upstream:
                columns, channels = dz.shape[0] * dz.shape[2] * dz.shape[3], dz.shape[1]
                w2t = np.ones((channels, operation.weight[0].size), dz.dtype).T   # a view, as W₂ᵀ
                dz2 = np.ones((channels, columns), dz.dtype)
                calls[f"{name} dP GEMM"] = lambda a=w2t, b=dz2: a @ b
        function = model.activations[index]
        z, h = forward.z[index], forward.h[index]
        activation_calls.append(f"g{layer} forward")
        if index < spec.n_layers - 1:
            calls[activation_calls[-1]] = lambda f=function, z=z: f.forward(z)
        else:                                   # as the step runs it: with log Σ e^Z for the loss
            calls[activation_calls[-1]] = lambda f=function, z=z: f.forward_with_log_sum(z)
        if index < spec.n_layers - 1:
            activation_calls.append(f"g{layer} backward")
            calls[activation_calls[-1]] = lambda f=function, z=z, h=h, d=grads.da[layer]: f.backward(z, h, d)
    loss_fn = model.loss_fn
    activation_calls += ["loss", "loss gradient"]
    calls["loss"] = lambda: loss_fn.value(forward.z[-1], forward.a[-1], targets, forward.log_sum)
    calls["loss gradient"] = lambda: loss_fn.gradient(forward.z[-1], forward.a[-1], targets)
    optimizer = make_optimizer(spec.optimizer)
    calls["step"] = lambda: model.train_step(x, targets, optimizer)
    t = _medians_interleaved(calls, repeats)

    parts: dict[str, float] = {}
    for index in range(spec.n_layers):
        layer, kind = index + 1, spec.numbered_layers[index].kind
        if kind == "conv2d":
            name = f"conv{layer}"
            parts[f"{name} im2col"] = t[f"{name} patches"]
            parts[f"{name} forward GEMM"] = t[f"{name} run"] - t[f"{name} patches"]
            parts[f"{name} dW,db GEMM"] = t[f"{name} no input gradient"]
            if f"{name} dP GEMM" in t:
                input_gradient = t[f"{name} differentiate"] - t[f"{name} no input gradient"]
                parts[f"{name} col2im (input gradient)"] = input_gradient
        else:
            name = {"max_pool2d": "pool"}.get(kind, kind) + str(layer)
            parts[f"{name} forward"] = t[f"{name} run"]
            parts[f"{name} backward"] = t[f"{name} differentiate"]
    parts["activations, loss"] = sum(t[name] for name in activation_calls)
    parts["rest (step − parts: SGD, glue, caches)"] = t["step"] - sum(parts.values())
    parts["step"] = t["step"]
    parts.update({f"{name} (within col2im)": t[name] for name in t if name.endswith("dP GEMM")})
    return parts
