"""One LSTM layer's training step — forward over T steps and backpropagation through time — in
the engine and in each framework, side by side, one thread (issue 22's bench, the layer alone).

    taskset -c 1 python tools/recurrent_step_bench.py                   # batch 64 and 256
    taskset -c 1 python tools/recurrent_step_bench.py --batches 64 --rounds 5

Sequential MNIST's shape: T = 28 steps of n = 28 features, H = 128 units, float32; the loss is
Σ h_T ⊙ R (R fixed), so each step times the layer's own forward and backward and nothing else:

* ``scratch``  ``LSTM.run`` then ``LSTM.bptt`` (``scratch.layers.recurrent``: one input projection
  for every step, a Python loop over the steps both ways);
* ``torch``    ``nn.LSTM(batch_first=True)`` then ``backward()``, eager; the autograd node the
  output hangs from is printed, which says which kernel torch took;
* ``tf.function``  ``keras.layers.LSTM`` under ``tf.GradientTape`` in one ``tf.function``;
* ``jax.jit``  ``jax.value_and_grad`` of ``twins.jax_recurrent.run_recurrent`` (``lax.scan``),
  jitted.

Each round times every backend in a random order; the figure is the median ms per step over
rounds and its ratio to the fastest. Gradients of the four are checked to agree (float32
tolerance) before anything is timed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))       # the checkout, not an install

T, N, H = 28, 28, 128


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="64,256")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5, help="steps per backend per round")
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be at least 1")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                 "TF_NUM_INTEROP_THREADS"):
        os.environ[name] = "1"
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

    from twins.hygiene import configure_frameworks

    configure_frameworks(threads=1)
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)

    with threadpool_limits(limits=1):
        for batch in (int(b) for b in args.batches.split(",")):
            steps, torch_node = build_steps(batch, rng)
            reference = steps["scratch"]()
            for name, step in steps.items():               # warm up, and the four agree
                for _ in range(2):
                    got = step()
                error = np.max(np.abs(got - reference)) / np.max(np.abs(reference))
                assert error < 1e-4, f"{name}: dW_hh rel err {error:.1e} against the engine"
            print(f"batch {batch}: torch's output hangs from {torch_node}", flush=True)
            times = {name: [] for name in steps}
            for _ in range(args.rounds):
                for name in random.sample(list(steps), len(steps)):
                    started = time.perf_counter()
                    for _ in range(args.steps):
                        steps[name]()
                    times[name].append((time.perf_counter() - started) / args.steps)
            medians = {name: statistics.median(values) for name, values in times.items()}
            fastest = min(medians.values())
            for name, value in medians.items():
                q1, _, q3 = statistics.quantiles(times[name], n=4)
                print(f"  {name:<12} {1e3 * value:8.2f} ms  (IQR {1e3 * q1:.2f}–{1e3 * q3:.2f})  "
                      f"× fastest {value / fastest:5.2f}", flush=True)
    return 0


def build_steps(batch: int, rng):
    """({backend: its step, returning dW_hh (4H, H)}, the autograd nodes torch's output hangs
    from): one LSTM on (batch, T, N) float32 in each, from the same tensors."""
    import jax
    import keras
    import numpy as np
    import tensorflow as tf
    import torch

    from scratch.layers.recurrent import LSTM
    from twins.jax_recurrent import run_recurrent
    from twins.recurrent_layouts import to_keras, to_torch

    bound = 1 / np.sqrt(H)
    shapes = {"weight_ih": (4 * H, N), "weight_hh": (4 * H, H), "bias_ih": (4 * H,), "bias_hh": (4 * H,)}
    tensors = {name: rng.uniform(-bound, bound, shape).astype(np.float32) for name, shape in shapes.items()}
    folded = {"weight_ih": tensors["weight_ih"], "weight_hh": tensors["weight_hh"],
              "bias": tensors["bias_ih"] + tensors["bias_hh"]}
    x = rng.normal(0, 1, (batch, T, N)).astype(np.float32)
    upstream = rng.normal(0, 1, (batch, H)).astype(np.float32)

    engine = LSTM(tensors["weight_ih"], tensors["weight_hh"], tensors["bias_ih"], tensors["bias_hh"],
                  return_sequences=False)

    def scratch_step():
        _, cache = engine.run(x)
        return engine.bptt(upstream, x, cache).parameters[1]

    module = torch.nn.LSTM(N, H, batch_first=True)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch("lstm", tensors).items()})
    xt, rt = torch.from_numpy(x), torch.from_numpy(upstream)

    def torch_step():
        module.zero_grad(set_to_none=True)
        out, _ = module(xt)
        (out[:, -1] * rt).sum().backward()
        return module.weight_hh_l0.grad.numpy()

    layer = keras.layers.LSTM(H, dtype="float32")
    layer.build((batch, T, N))
    layer.set_weights(to_keras("lstm", folded))
    xk, rk = tf.constant(x), tf.constant(upstream)

    @tf.function
    def keras_gradients():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(xk) * rk)
        return tape.gradient(loss, layer.trainable_weights)

    def keras_step():                                      # Keras's gate order is torch's: dW_hh
        return keras_gradients()[1].numpy().T

    jax_tensors = {k: jax.numpy.asarray(v) for k, v in tensors.items()}
    zeros = jax.numpy.zeros((batch, H), jax.numpy.float32)

    @jax.jit
    def jax_gradients(params, x, upstream):
        def loss(params):
            return (run_recurrent("lstm", params, x, (zeros, zeros))[:, -1] * upstream).sum()
        return jax.grad(loss)(params)

    def jax_step():
        return np.asarray(jax_gradients(jax_tensors, x, upstream)["weight_hh"])

    node = module(xt)[0].grad_fn
    below = ", ".join(type(n[0]).__name__ for n in node.next_functions if n[0])
    return ({"scratch": scratch_step, "torch": torch_step, "tf.function": keras_step, "jax.jit": jax_step},
            f"{type(node).__name__} (then {below})")


if __name__ == "__main__":
    raise SystemExit(main())
